/*
 * Clarion Web SDK v1, served by a Clarion server at /sdk/v1/clarion.js. No dependencies, no build step.
 *
 * On a page:
 *
 *   <script>
 *     window.Clarion = window.Clarion || [];
 *     Clarion.push(['init', {appKey: 'YOUR_APP_KEY'}]);
 *     Clarion.push(function (clarion) {
 *       clarion.subscribe().then(function (sub) { console.log('regId', sub.regId); });
 *     });
 *   </script>
 *   <script src="https://push.example.com/sdk/v1/clarion.js" async></script>
 *
 * Commands pushed before the script loads run in order once it has; afterwards `Clarion` is this API,
 * whose methods return promises. A failed call rejects with a ClarionError carrying the server's
 * error `code`, `message` and `field` (and the HTTP `status`).
 *
 * The service worker (sw.js) reads what it needs (server, app key, regId, auth secret) from the
 * IndexedDB database "clarion" that this script writes: a worker cannot read localStorage.
 */
(function (global) {
  'use strict';

  const AUTH_HEADER = 'X-Clarion-Subscription-Auth';
  const API_PATH = '/sdk/v1';
  const COMMANDS = [
    'init', 'subscribe', 'isSubscribed', 'getSubscription', 'unsubscribe', 'setAlias', 'addTag',
    'setTags', 'removeTag', 'removeAllTags', 'getTags', 'setAttributes', 'getAttributes', 'sendTestNotification', 'login',
  ];

  if (global.Clarion && global.Clarion.__clarion) {
    return; // loaded twice: the first copy keeps serving
  }

  // The server is where this script came from, unless init names another.
  const scriptSource = global.document && global.document.currentScript && global.document.currentScript.src;

  function defaultServer() {
    if (!scriptSource) return global.location.origin;
    const at = scriptSource.indexOf(API_PATH + '/');
    return at >= 0 ? scriptSource.slice(0, at) : new URL(scriptSource).origin;
  }

  // --- errors ----------------------------------------------------------------------------------------

  function ClarionError(code, message, field, status) {
    const error = new Error(message);
    error.name = 'ClarionError';
    error.code = code;
    error.field = field === undefined ? null : field;
    error.status = status === undefined ? null : status;
    return error;
  }

  // --- the shared state in IndexedDB (the same code is in sw.js) -------------------------------------

  const DB_NAME = 'clarion';
  const DB_STORE = 'state';
  const DB_KEY = 'subscription';

  function openDb() {
    return new Promise(function (resolve, reject) {
      const request = global.indexedDB.open(DB_NAME, 1);
      request.onupgradeneeded = function () { request.result.createObjectStore(DB_STORE); };
      request.onsuccess = function () { resolve(request.result); };
      request.onerror = function () { reject(request.error); };
    });
  }

  function withStore(mode, action) {
    return openDb().then(function (db) {
      return new Promise(function (resolve, reject) {
        const transaction = db.transaction(DB_STORE, mode);
        const request = action(transaction.objectStore(DB_STORE));
        transaction.oncomplete = function () { db.close(); resolve(request.result); };
        transaction.onerror = transaction.onabort = function () { db.close(); reject(transaction.error); };
      });
    });
  }

  function loadState() {
    return withStore('readonly', function (store) { return store.get(DB_KEY); })
      .then(function (state) { return state || {}; });
  }

  function saveState(state) {
    return withStore('readwrite', function (store) { return store.put(state, DB_KEY); });
  }

  function withoutSubscription(state) {
    const rest = {};
    Object.keys(state).forEach(function (key) {
      if (['regId', 'auth', 'endpoint', 'p256dh'].indexOf(key) < 0) rest[key] = state[key];
    });
    return rest;
  }

  // --- HTTP --------------------------------------------------------------------------------------------

  async function request(server, method, path, options) {
    options = options || {};
    const url = new URL(server + API_PATH + path);
    if (options.appKey) url.searchParams.set('app_key', options.appKey);
    const headers = {};
    if (options.body !== undefined) headers['Content-Type'] = 'application/json';
    if (options.auth) headers[AUTH_HEADER] = options.auth;
    let response;
    try {
      response = await fetch(url.href, {
        method: method,
        headers: headers,
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
        credentials: 'omit',
        cache: 'no-store',
      });
    } catch (failure) {
      throw ClarionError('network_error', 'The Clarion server could not be reached: ' + failure.message);
    }
    let data = null;
    if (response.status !== 204) {
      data = await response.json().catch(function () { return null; });
    }
    if (!response.ok) {
      const body = data || {};
      throw ClarionError(
        body.error || 'http_' + response.status,
        body.message || response.statusText || 'HTTP ' + response.status,
        body.field,
        response.status
      );
    }
    return data;
  }

  // Registering an endpoint the server knows already with other keys needs the registered
  // subscription's secret: sent when this browser holds it for this endpoint.
  // The browser's IANA time zone (for campaigns sent at a local time); none if the browser cannot tell.
  function timeZone() {
    try {
      return global.Intl.DateTimeFormat().resolvedOptions().timeZone || undefined;
    } catch (error) {
      return undefined;
    }
  }

  function register(state, subscription) {
    const body = Object.assign(
      {
        app_key: state.appKey,
        platform: 'web',
        subscription: subscription,
        timezone: timeZone(),
        vapid_public_key: state.vapidPublicKey,
      },
      identityFields(),
      languageField()
    );
    const held = state.auth && state.endpoint === subscription.endpoint ? state.auth : undefined;
    return request(state.server, 'POST', '/subscribers', {body: body, auth: held});
  }

  // Keeps the regId (with its alias and tags) when the browser's subscription changed; when the server
  // refuses (it no longer knows this regId and secret, or another subscriber holds the new endpoint),
  // a plain registration.
  async function registerOrMove(state, subscription) {
    if (state.regId && state.auth && state.endpoint !== subscription.endpoint) {
      try {
        const moved = await request(
          state.server, 'POST', '/subscribers/' + encodeURIComponent(state.regId) + '/resubscribe',
          {appKey: state.appKey, auth: state.auth, body: {subscription: subscription, vapid_public_key: state.vapidPublicKey}}
        );
        return moved.regId;
      } catch (error) {
        if (error.status !== 401 && error.status !== 422) throw error;
      }
    }
    return (await register(state, subscription)).regId;
  }

  // --- service worker and push subscription ------------------------------------------------------------

  function base64UrlToBytes(text) {
    const base64 = text.replace(/-/g, '+').replace(/_/g, '/');
    const raw = global.atob(base64 + '='.repeat((4 - (base64.length % 4)) % 4));
    const bytes = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return bytes;
  }

  function sameBytes(buffer, bytes) {
    if (!buffer) return true; // a browser that does not tell the key: assume it is the same
    const view = new Uint8Array(buffer);
    if (view.length !== bytes.length) return false;
    for (let i = 0; i < view.length; i++) if (view[i] !== bytes[i]) return false;
    return true;
  }

  function supported() {
    return 'serviceWorker' in global.navigator && 'PushManager' in global && 'Notification' in global;
  }

  function activated(registration) {
    if (registration.active) return Promise.resolve(registration);
    const worker = registration.installing || registration.waiting;
    return new Promise(function (resolve, reject) {
      function check() {
        if (worker.state === 'activated') resolve(registration);
        if (worker.state === 'redundant') reject(ClarionError('worker_failed', 'The service worker failed to install'));
      }
      worker.addEventListener('statechange', check);
      check();
    });
  }

  function existingRegistration(config) {
    if (!supported()) return Promise.resolve(undefined);
    return global.navigator.serviceWorker.getRegistration(config.serviceWorkerScope || config.serviceWorkerPath);
  }

  async function browserSubscription(config) {
    const registration = await existingRegistration(config);
    return registration ? registration.pushManager.getSubscription() : null;
  }

  // --- the API -----------------------------------------------------------------------------------------

  let config = null; // set by init: {appKey, server, vapidPublicKey, serviceWorkerPath, serviceWorkerScope}
  let initializing = null;
  // The user this page's visitor is signed in as, with the HMACs the site's backend made of the ids
  // (identity verification: docs/security.md). Kept in memory only: a hash is a credential of its user,
  // and the page gives it again on each load (init or login); the server keeps the binding.
  let identity = {};

  const IDENTITY_OPTIONS = [
    ['userId', 'user_id'], ['userIdHash', 'user_id_hash'],
    ['externalUserId', 'external_user_id'], ['externalUserIdHash', 'external_user_id_hash'],
  ];

  // {userId?, userIdHash?, externalUserId?, externalUserIdHash?}: each given one a non-empty string.
  function identityFrom(options) {
    const chosen = {};
    for (const [option] of IDENTITY_OPTIONS) {
      const value = options[option];
      if (value === undefined || value === null) continue;
      if (typeof value !== 'string' || !value) {
        throw ClarionError('invalid_field', option + ' must be a non-empty string', option);
      }
      chosen[option] = value;
    }
    return chosen;
  }

  // The registration's fields for the ids and their hashes (the server checks them).
  function identityFields() {
    const fields = {};
    for (const [option, field] of IDENTITY_OPTIONS) {
      if (identity[option] !== undefined) fields[field] = identity[option];
    }
    return fields;
  }

  // The browser's preferred language picks a campaign's content language (docs/personalization.md);
  // a value the server would refuse (not a BCP 47 tag) is left out rather than failing the registration.
  function languageField() {
    const language = global.navigator.language;
    return typeof language === 'string' && /^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$/.test(language) &&
      language.length <= 16 ? {language: language} : {};
  }

  function ready() {
    if (!initializing) {
      return Promise.reject(ClarionError('not_initialized', "Call Clarion.init({appKey: '…'}) first"));
    }
    return initializing;
  }

  function init(options) {
    initializing = (async function () {
      if (!options || typeof options.appKey !== 'string' || !options.appKey) {
        throw ClarionError('invalid_field', 'init needs an appKey', 'appKey');
      }
      identity = identityFrom(options);
      const server = (options.server || defaultServer()).replace(/\/+$/, '');
      const sameOrigin = new URL(server).origin === global.location.origin;
      const app = await request(server, 'GET', '/apps/' + encodeURIComponent(options.appKey));
      config = {
        appKey: app.app_key,
        server: server,
        vapidPublicKey: app.vapid_public_key,
        // A site hosts its own worker file (one line: importScripts of sw.js) unless it is this server.
        serviceWorkerPath: options.serviceWorkerPath || (sameOrigin ? server + API_PATH + '/sw.js' : '/clarion-sw.js'),
        serviceWorkerScope: options.serviceWorkerScope || null,
      };
      let state = await loadState();
      if (state.appKey && state.appKey !== config.appKey) state = withoutSubscription(state);
      state.appKey = config.appKey;
      state.server = config.server;
      state.vapidPublicKey = config.vapidPublicKey;
      await saveState(state);
      await followTimeZone(state);
      try {
        await moveToCurrentKey(state);
      } catch (error) {
        // The page works on; the next page view tries again, and the old key keeps signing meanwhile.
        global.console.warn('[Clarion] moving the subscription to the new VAPID key failed:', error.message || error);
      }
      return {appKey: config.appKey, vapidPublicKey: config.vapidPublicKey};
    })();
    return initializing;
  }

  // A subscribed browser whose time zone changed (its user travelled, or changed it) registers again
  // with the new one; a failure here never stops init.
  async function followTimeZone(state) {
    const zone = timeZone();
    if (!state.regId || !state.endpoint || !zone || state.timezone === zone) return;
    try {
      const current = await browserSubscription(config);
      if (!current || current.endpoint !== state.endpoint) return;
      await register(state, current.toJSON());
      state.timezone = zone;
      await saveState(state);
    } catch (error) {
      // The next init tries again.
    }
  }

  // After the app's VAPID key was rotated, a browser subscribed with the old key is subscribed again
  // with the new one on its next page view, keeping its regId (with its alias and tags); until then the
  // server signs its messages with the old key.
  async function moveToCurrentKey(state) {
    if (!state.regId || !supported() || global.Notification.permission !== 'granted') return;
    const registration = await existingRegistration(config);
    if (!registration) return;
    const key = base64UrlToBytes(config.vapidPublicKey);
    const current = await registration.pushManager.getSubscription();
    if (!current || sameBytes(current.options && current.options.applicationServerKey, key)) return;
    await current.unsubscribe();
    const subscription = await registration.pushManager.subscribe({userVisibleOnly: true, applicationServerKey: key});
    const json = subscription.toJSON();
    state.regId = await registerOrMove(state, json);
    state.auth = json.keys.auth;
    state.endpoint = json.endpoint;
    state.p256dh = json.keys.p256dh;
    await saveState(state);
  }

  async function subscribe() {
    await ready();
    if (!supported()) throw ClarionError('unsupported', 'This browser does not support Web Push');
    const permission = await global.Notification.requestPermission();
    if (permission !== 'granted') {
      throw ClarionError('permission_denied', 'Notifications are not allowed for this site (' + permission + ')');
    }
    const options = config.serviceWorkerScope ? {scope: config.serviceWorkerScope} : undefined;
    const registration = await activated(
      await global.navigator.serviceWorker.register(config.serviceWorkerPath, options)
    );
    const key = base64UrlToBytes(config.vapidPublicKey);
    let subscription = await registration.pushManager.getSubscription();
    if (subscription && !sameBytes(subscription.options && subscription.options.applicationServerKey, key)) {
      await subscription.unsubscribe(); // made with another app's key
      subscription = null;
    }
    if (!subscription) {
      subscription = await registration.pushManager.subscribe({userVisibleOnly: true, applicationServerKey: key});
    }
    const json = subscription.toJSON();
    const state = await loadState();
    const regId = await registerOrMove(state, json);
    state.regId = regId;
    state.auth = json.keys.auth;
    state.endpoint = json.endpoint;
    state.p256dh = json.keys.p256dh;
    state.timezone = timeZone();
    await saveState(state);
    return publicView(state);
  }

  function publicView(state) {
    return {regId: state.regId, endpoint: state.endpoint, p256dh: state.p256dh, auth: state.auth};
  }

  async function getSubscription() {
    await ready();
    const state = await loadState();
    if (!state.regId) return null;
    const current = await browserSubscription(config);
    if (!current || current.endpoint !== state.endpoint) return null;
    return publicView(state);
  }

  async function subscribed() {
    const state = await loadState();
    if (!state.regId || !state.auth) {
      throw ClarionError('not_subscribed', 'This browser is not subscribed: call subscribe() first');
    }
    return state;
  }

  function own(state, method, path, body) {
    return request(config.server, method, '/subscribers/' + encodeURIComponent(state.regId) + path, {
      appKey: config.appKey, auth: state.auth, body: body,
    });
  }

  async function isSubscribed() {
    if (!(await getSubscription())) return false;
    try {
      return (await own(await subscribed(), 'GET', '')).active === true;
    } catch (error) {
      if (error.status === 401) return false;
      throw error;
    }
  }

  async function unsubscribe() {
    await ready();
    const state = await loadState();
    const current = await browserSubscription(config);
    if (state.regId) {
      try {
        await request(config.server, 'DELETE', '/subscribers/' + encodeURIComponent(state.regId), {
          appKey: config.appKey, auth: state.auth,
        });
      } catch (error) {
        // 404: the server no longer knows this regId with this secret; 401: no secret was stored.
        if (error.status !== 404 && error.status !== 401) throw error;
      }
    }
    if (current) await current.unsubscribe();
    await saveState(withoutSubscription(state));
    return Boolean(state.regId);
  }

  // Each resolves to the subscriber as the server now has it: {regId, alias, tags, active}.
  async function call(method, path, body) {
    await ready();
    return own(await subscribed(), method, path, body);
  }

  function setAlias(alias) { return call('PUT', '/alias', {alias: alias}); }
  function addTag(tag) { return call('POST', '/tags', {tag: tag}); }
  function setTags(tags) { return call('PUT', '/tags', {tags: tags}); }
  function removeTag(tag) { return call('DELETE', '/tags/' + encodeURIComponent(tag)); }
  function removeAllTags() { return call('DELETE', '/tags'); }
  function getTags() { return call('GET', '/tags').then(function (answer) { return answer.tags; }); }
  // Merges: a string sets a key, null removes it; both resolve to the subscriber's attributes as stored.
  function setAttributes(attributes) {
    return call('PATCH', '/attributes', {attributes: attributes}).then(function (answer) { return answer.attributes; });
  }
  function getAttributes() {
    return call('GET', '/attributes').then(function (answer) { return answer.attributes; });
  }

  // Binds this browser's subscriber to the signed-in user: {userId, userIdHash} and/or
  // {externalUserId, externalUserIdHash}, the hashes made by the site's backend. Subscribed: registers
  // the subscription again with them now (the same regId) and resolves to getSubscription()'s view; not
  // subscribed yet: kept for subscribe(), resolves to null. A wrong hash rejects (403
  // identity_not_verified) and binds nothing.
  async function login(options) {
    await ready();
    const chosen = identityFrom(options || {});
    const state = await loadState();
    const current = state.regId ? await browserSubscription(config) : null;
    if (current && current.endpoint === state.endpoint) {
      const previous = identity;
      identity = Object.assign({}, identity, chosen);
      try {
        await register(state, current.toJSON());
      } catch (error) {
        identity = previous; // refused: the next registration does not send it again
        throw error;
      }
      return publicView(state);
    }
    identity = Object.assign({}, identity, chosen);
    return null;
  }

  // Asks the server to send this browser a notification (the demo page's button): {campaign_id}.
  function sendTestNotification(options) { return call('POST', '/test', options || {}); }

  // --- the command queue -------------------------------------------------------------------------------

  const api = {
    __clarion: true,
    init: init,
    subscribe: subscribe,
    isSubscribed: isSubscribed,
    getSubscription: getSubscription,
    unsubscribe: unsubscribe,
    setAlias: setAlias,
    addTag: addTag,
    setTags: setTags,
    removeTag: removeTag,
    removeAllTags: removeAllTags,
    getTags: getTags,
    setAttributes: setAttributes,
    getAttributes: getAttributes,
    sendTestNotification: sendTestNotification,
    login: login,
  };

  let queue = Promise.resolve();

  function run(command) {
    if (typeof command === 'function') return command(api);
    if (Array.isArray(command) && COMMANDS.indexOf(command[0]) >= 0) {
      return api[command[0]].apply(api, command.slice(1));
    }
    throw ClarionError('unknown_command', 'Unknown Clarion command: ' + JSON.stringify(command));
  }

  // Commands run one after another, in the order they were pushed; a failing one is reported on the
  // console and does not stop the next.
  api.push = function (...commands) {
    for (const command of commands) {
      queue = queue
        .then(function () { return run(command); })
        .catch(function (error) { global.console.error('[Clarion]', error.code || '', error.message || error); });
    }
    return 0;
  };

  const pending = Array.isArray(global.Clarion) ? global.Clarion : [];
  global.Clarion = api;
  api.push.apply(api, pending);
})(typeof self !== 'undefined' ? self : this);
