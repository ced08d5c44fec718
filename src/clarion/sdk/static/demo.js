/* The demo page (/sdk/v1/demo?appKey=…): drives the Web SDK exactly as a site would. */
(function () {
  'use strict';

  const appKey = new URLSearchParams(window.location.search).get('appKey');

  // The snippet a site puts on its pages: commands queue up until clarion.js has loaded.
  window.Clarion = window.Clarion || [];
  if (appKey) window.Clarion.push(['init', {appKey: appKey}]);
  window.Clarion.push(function (clarion) { window.demo.loaded(clarion); });

  function $(id) { return document.getElementById(id); }

  function log(text, isError) {
    const line = document.createElement('div');
    line.textContent = new Date().toLocaleTimeString() + '  ' + text;
    if (isError) line.className = 'error';
    $('log').prepend(line);
  }

  function showTags(names) {
    const tags = $('tags');
    tags.replaceChildren();
    names.forEach(function (name) {
      const chip = document.createElement('span');
      chip.className = 'tag';
      chip.textContent = name;
      tags.append(chip);
    });
    if (!names.length) tags.textContent = '–';
  }

  function showSubscriber(view) {
    $('alias').textContent = view.alias || '–';
    showTags(view.tags);
  }

  async function refresh(clarion) {
    const subscription = await clarion.getSubscription();
    const active = subscription ? await clarion.isSubscribed() : false;
    $('status').textContent = active ? 'subscribed' : 'not subscribed (permission: ' + Notification.permission + ')';
    $('reg-id').textContent = subscription ? subscription.regId : '–';
    $('endpoint').textContent = subscription ? subscription.endpoint : '–';
    if (active) showTags(await clarion.getTags());
    document.body.dataset.state = active ? 'subscribed' : 'unsubscribed';
  }

  function action(id, run) {
    $(id).addEventListener('click', async function () {
      try {
        await run();
      } catch (error) {
        log((error.code ? error.code + ': ' : '') + error.message, true);
      }
    });
  }

  window.demo = {
    loaded: function (clarion) {
      $('app-key').textContent = appKey || '(none)';
      $('no-app').hidden = Boolean(appKey);
      if (!appKey) return;

      action('subscribe', async function () {
        const subscription = await clarion.subscribe();
        log('subscribed: regId ' + subscription.regId);
        await refresh(clarion);
      });
      action('unsubscribe', async function () {
        await clarion.unsubscribe();
        log('unsubscribed');
        showSubscriber({alias: null, tags: []});
        await refresh(clarion);
      });
      action('set-alias', async function () {
        showSubscriber(await clarion.setAlias($('alias-input').value));
        log('alias set');
      });
      action('add-tag', async function () {
        showSubscriber(await clarion.addTag($('tag-input').value));
        log('tag added');
      });
      action('remove-tag', async function () {
        showSubscriber(await clarion.removeTag($('tag-input').value));
        log('tag removed');
      });
      action('remove-all-tags', async function () {
        showSubscriber(await clarion.removeAllTags());
        log('all tags removed');
      });
      action('send-test', async function () {
        const sent = await clarion.sendTestNotification({redirect_url: window.location.href});
        log('test notification sent: campaign ' + sent.campaign_id);
      });
      refresh(clarion).catch(function (error) { log(error.code + ': ' + error.message, true); });
    },
  };
})();
