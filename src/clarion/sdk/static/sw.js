/*
 * Clarion service worker v1, served by a Clarion server at /sdk/v1/sw.js. No dependencies.
 *
 * Register it directly, or from a site's own worker on the site's origin (for example /clarion-sw.js):
 *
 *   importScripts('https://push.example.com/sdk/v1/sw.js');
 *
 * It shows Clarion's pushes, reports `received`, `clicked` and `closed` to the server, and moves the
 * subscriber onto the browser's new subscription when the old one changes. It reads the server, the
 * app key, the regId and the subscription's auth secret from the IndexedDB database "clarion" that
 * the SDK (clarion.js) writes. A site's worker that routes events itself can call the handlers in
 * `self.ClarionWorker` instead (set `self.ClarionWorkerOptions = {listen: false}` before importing).
 */
(function (worker) {
  'use strict';

  const API_PATH = '/sdk/v1';
  const AUTH_HEADER = 'X-Clarion-Subscription-Auth';
  // Notification actions a browser shows at most (Chromium's Notification.maxActions).
  const MAX_BUTTONS = 2;
  // Chromium ends a service worker event after 5 minutes: a notification is closed by the worker only
  // when its display_time is shorter than this, and otherwise left to the user.
  const MAX_DISPLAY_HOLD_S = 240;
  // The `web_push` member of a declarative push message (W3C Push API; RFC 8030's number).
  const DECLARATIVE_MAGIC = 8030;
  const standalone = worker.location.pathname.endsWith(API_PATH + '/sw.js');

  // --- the shared state in IndexedDB (the same code is in clarion.js) --------------------------------

  const DB_NAME = 'clarion';
  const DB_STORE = 'state';
  const DB_KEY = 'subscription';

  function openDb() {
    return new Promise(function (resolve, reject) {
      const request = worker.indexedDB.open(DB_NAME, 1);
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

  async function loadState() {
    const state = (await withStore('readonly', function (store) { return store.get(DB_KEY); })) || {};
    if (!state.server && standalone) {
      const path = worker.location.pathname;
      state.server = worker.location.origin + path.slice(0, path.length - (API_PATH + '/sw.js').length);
    }
    return state;
  }

  function saveState(state) {
    return withStore('readwrite', function (store) { return store.put(state, DB_KEY); });
  }

  // --- HTTP --------------------------------------------------------------------------------------------

  async function request(state, method, path, options) {
    const url = new URL(state.server + API_PATH + path);
    if (options.appKey) url.searchParams.set('app_key', options.appKey);
    const headers = {'Content-Type': 'application/json'};
    if (options.auth) headers[AUTH_HEADER] = options.auth;
    const response = await fetch(url.href, {
      method: method,
      headers: headers,
      body: JSON.stringify(options.body),
      credentials: 'omit',
      cache: 'no-store',
    });
    if (!response.ok) {
      const error = new Error('Clarion answered ' + response.status + ' to ' + method + ' ' + path);
      error.status = response.status;
      throw error;
    }
    return response.status === 204 ? null : response.json();
  }

  async function report(type, campaignId) {
    try {
      const state = await loadState();
      if (!state.server || !state.appKey || !state.regId || !state.auth || campaignId === undefined) return;
      // The subscription's secret proves the report comes from this subscriber.
      await request(state, 'POST', '/events', {
        auth: state.auth,
        body: {app_key: state.appKey, regId: state.regId, campaign_id: String(campaignId), type: type},
      });
    } catch (error) {
      console.warn('[Clarion] could not report', type, error);
    }
  }

  // A script-constructed event (a site's worker forwarding one, a test) cannot be extended; the work
  // runs all the same.
  function extend(event, promise) {
    try {
      event.waitUntil(promise);
    } catch (error) {
      /* not extendable: see above */
    }
    return promise;
  }

  function sleep(seconds) {
    return new Promise(function (resolve) { setTimeout(resolve, seconds * 1000); });
  }

  // --- push --------------------------------------------------------------------------------------------

  // The payload Clarion sends (content.web_fields): campaign_id, title, message, icon, image,
  // redirect_url, buttons [{title, url}], display_time (seconds; 0 = until the user acts), tag.
  function clarionPayload(event) {
    if (!event.data) return null;
    let data;
    try {
      data = event.data.json();
    } catch (error) {
      return null;
    }
    if (data && typeof data === 'object' && data.web_push === DECLARATIVE_MAGIC) data = fromDeclarative(data);
    const ours = data && typeof data === 'object' && data.campaign_id !== undefined && typeof data.title === 'string';
    return ours ? data : null;
  }

  // A declarative push message (Declarative Web Push, docs/declarative-web-push.md) read back into the
  // payload above: Safari shows it by itself, every other browser hands it to this worker.

  function fromDeclarative(message) {
    const shown = message.notification;
    const ours = shown && typeof shown === 'object' && shown.data && typeof shown.data === 'object' ? shown.data : null;
    if (!ours || ours.campaign_id === undefined) return null; // not Clarion's
    const actions = Array.isArray(shown.actions) ? shown.actions : [];
    const data = {
      campaign_id: ours.campaign_id,
      title: shown.title,
      message: shown.body || '',
      icon: shown.icon || null,
      image: shown.image || null,
      redirect_url: shown.navigate,
      buttons: actions.map(function (action) { return {title: action.title, url: action.navigate}; }),
      display_time: typeof ours.display_time === 'number' ? ours.display_time : 0,
      tag: shown.tag || null,
    };
    if (ours.data !== undefined) data.data = ours.data;
    return data;
  }

  function notificationOptions(data) {
    const buttons = (Array.isArray(data.buttons) ? data.buttons : []).slice(0, MAX_BUTTONS);
    const options = {
      body: data.message || '',
      requireInteraction: data.display_time === 0,
      actions: buttons.map(function (button, index) { return {action: 'button-' + index, title: button.title}; }),
      data: {clarion: true, campaign_id: data.campaign_id, redirect_url: data.redirect_url, buttons: buttons},
    };
    if (data.icon) options.icon = data.icon;
    if (data.image) options.image = data.image;
    // Every notification has a tag (its campaign's own without a push_tag, as the server's
    // content.display_tag), so that an update of the campaign replaces it.
    options.tag = shownTag(data);
    return options;
  }

  function shownTag(data) {
    return data.tag || 'clarion-' + data.campaign_id;
  }

  // A retraction (content.retract_fields): {campaign_id, retract: true, tag}. It closes what is shown
  // under the tag for that campaign, shows nothing, and is not counted as received.
  function retraction(event) {
    if (!event.data) return null;
    try {
      const data = event.data.json();
      return data && data.retract === true && data.campaign_id !== undefined ? data : null;
    } catch (error) {
      return null;
    }
  }

  async function retract(data) {
    const shown = await worker.registration.getNotifications({tag: shownTag(data)});
    shown.forEach(function (notification) {
      const ours = notification.data && notification.data.clarion;
      if (ours && String(notification.data.campaign_id) === String(data.campaign_id)) notification.close();
    });
    return true;
  }

  async function closeLater(campaignId, seconds) {
    await sleep(seconds);
    const shown = await worker.registration.getNotifications();
    shown.forEach(function (notification) {
      if (notification.data && notification.data.clarion && notification.data.campaign_id === campaignId) {
        notification.close();
      }
    });
  }

  function handlePush(event) {
    const retracted = retraction(event);
    if (retracted) return extend(event, retract(retracted));
    const data = clarionPayload(event);
    if (!data) return Promise.resolve(false); // not Clarion's: a site's own worker handles it
    const shown = worker.registration.showNotification(data.title, notificationOptions(data)).then(function () {
      const seconds = data.display_time;
      if (typeof seconds === 'number' && seconds > 0 && seconds <= MAX_DISPLAY_HOLD_S) {
        return closeLater(data.campaign_id, seconds);
      }
    });
    return extend(event, Promise.all([shown, report('received', data.campaign_id)]).then(function () { return true; }));
  }

  // --- clicks and closes -------------------------------------------------------------------------------

  async function openOrFocus(url) {
    const target = new URL(url, worker.location.href).href;
    try {
      const windows = await worker.clients.matchAll({type: 'window', includeUncontrolled: true});
      const open = windows.find(function (client) { return client.url === target; });
      if (open && 'focus' in open) return await open.focus();
      return await worker.clients.openWindow(target);
    } catch (error) {
      console.warn('[Clarion] could not open', target, error);
      return null;
    }
  }

  function handleNotificationClick(event) {
    const notification = event.notification;
    const data = notification.data || {};
    if (!data.clarion) return Promise.resolve(false);
    notification.close();
    let url = data.redirect_url;
    const index = event.action ? Number(String(event.action).replace('button-', '')) : -1;
    if (data.buttons && data.buttons[index] && data.buttons[index].url) url = data.buttons[index].url;
    // Opening a window is allowed only while the click is being handled: start it at once.
    const opened = url ? openOrFocus(url) : Promise.resolve(null);
    return extend(event, Promise.all([opened, report('clicked', data.campaign_id)]).then(function () { return true; }));
  }

  function handleNotificationClose(event) {
    const data = event.notification.data || {};
    if (!data.clarion) return Promise.resolve(false);
    return extend(event, report('closed', data.campaign_id).then(function () { return true; }));
  }

  // --- the browser renewed (or dropped) the push subscription ------------------------------------------

  function base64UrlToBytes(text) {
    const base64 = text.replace(/-/g, '+').replace(/_/g, '/');
    const raw = atob(base64 + '='.repeat((4 - (base64.length % 4)) % 4));
    return Uint8Array.from(raw, function (char) { return char.charCodeAt(0); });
  }

  // The application server key a subscription was made with, as the server names it (base64url).
  function keyOf(subscription) {
    const buffer = subscription.options && subscription.options.applicationServerKey;
    if (!buffer) return undefined;
    const text = btoa(String.fromCharCode.apply(null, new Uint8Array(buffer)));
    return text.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  async function renew(event) {
    const state = await loadState();
    if (!state.server || !state.appKey || !state.regId || !state.auth) return false;
    let subscription = event.newSubscription || null;
    if (!subscription) {
      let key = event.oldSubscription && event.oldSubscription.options && event.oldSubscription.options.applicationServerKey;
      if (!key) {
        if (!state.vapidPublicKey) {
          state.vapidPublicKey = (await request(state, 'GET', '/apps/' + encodeURIComponent(state.appKey), {})).vapid_public_key;
        }
        key = base64UrlToBytes(state.vapidPublicKey);
      }
      subscription = await worker.registration.pushManager.subscribe({userVisibleOnly: true, applicationServerKey: key});
    }
    const json = subscription.toJSON();
    // Which of the app's keys signs its messages: an app that rotated its key keeps the old one for it.
    const vapidKey = keyOf(subscription);
    let regId;
    try {
      // Authorised by the old subscription's secret: the regId keeps its alias and tags.
      const moved = await request(state, 'POST', '/subscribers/' + encodeURIComponent(state.regId) + '/resubscribe', {
        appKey: state.appKey, auth: state.auth, body: {subscription: json, vapid_public_key: vapidKey},
      });
      regId = moved.regId;
    } catch (error) {
      if (error.status !== 401 && error.status !== 422) throw error;
      const registered = await request(state, 'POST', '/subscribers', {
        body: {app_key: state.appKey, platform: 'web', subscription: json, vapid_public_key: vapidKey},
      });
      regId = registered.regId;
    }
    state.regId = regId;
    state.auth = json.keys.auth;
    state.endpoint = json.endpoint;
    state.p256dh = json.keys.p256dh;
    await saveState(state);
    return true;
  }

  function handleSubscriptionChange(event) {
    const renewed = renew(event).catch(function (error) {
      console.warn('[Clarion] could not renew the push subscription', error);
      return false;
    });
    return extend(event, renewed);
  }

  // --- wiring ------------------------------------------------------------------------------------------

  worker.ClarionWorker = {
    handlePush: handlePush,
    handleNotificationClick: handleNotificationClick,
    handleNotificationClose: handleNotificationClose,
    handleSubscriptionChange: handleSubscriptionChange,
  };

  const options = worker.ClarionWorkerOptions || {};
  if (options.listen !== false) {
    worker.addEventListener('push', handlePush);
    worker.addEventListener('notificationclick', handleNotificationClick);
    worker.addEventListener('notificationclose', handleNotificationClose);
    worker.addEventListener('pushsubscriptionchange', handleSubscriptionChange);
  }
  if (standalone) {
    // This worker handles only push events, so a new version may take over at once.
    worker.addEventListener('install', function () { worker.skipWaiting(); });
    worker.addEventListener('activate', function (event) { event.waitUntil(worker.clients.claim()); });
  }
})(self);
