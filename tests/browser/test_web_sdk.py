"""The Web SDK and its service worker in a real headless Chromium against a real `clarion serve`.

See tests/browser/harness.py for how the test stands in for the push service.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path

import httpx
import pytest

from clarion.subscriber.self_service import AUTH_HEADER, TEST_PUSH_TAG, TEST_TITLE
from tests.app_tenant.factory import id_hash
from tests.browser.harness import Visit, wait_until

pytestmark = pytest.mark.e2e


def test_the_demo_page_subscribes_and_every_sdk_call_reaches_the_server(
    visit: Visit, artifacts: Path
) -> None:
    server, page = visit.server, visit.page
    visit.open_demo()
    assert page.get_attribute("body", "data-state") == "unsubscribed"

    # A newcomer presses Subscribe and sees their regId.
    page.click("#subscribe")
    visit.wait_for("document.body.dataset.state === 'subscribed'")
    reg_id = page.inner_text("#reg-id")
    assert page.inner_text("#endpoint") == visit.subscription.endpoint
    page.screenshot(path=str(artifacts / "demo-subscribed.png"), full_page=True)

    # The SDK subscribed with the app's VAPID key and registered the subscription it got.
    assert page.evaluate("window.__fakePush.subscribedWith()") == server.vapid_public_key
    assert visit.sdk("getSubscription") == {
        "regId": reg_id,
        "endpoint": visit.subscription.endpoint,
        "p256dh": visit.subscription.p256dh,
        "auth": visit.subscription.auth,
    }
    assert visit.sdk("isSubscribed") is True
    assert server.alias(reg_id) == {"regIdExists": "true", "aliasExists": "false", "isActiveFollower": "true"}
    # Subscribing again is the same subscriber.
    assert visit.subscribe() == reg_id

    # Alias.
    view = visit.sdk("setAlias", "visitor-1")
    assert view == {"regId": reg_id, "alias": "visitor-1", "tags": [], "active": True}
    assert server.alias(reg_id)["alias"] == "visitor-1"
    error = visit.sdk_error("setAlias", "a" * 256)
    assert error == {
        "name": "ClarionError",
        "code": "alias_too_long",
        "message": "Max alias length is 255!",
        "field": None,
        "status": 422,
    }
    assert server.alias(reg_id)["alias"] == "visitor-1"

    # Tags: case-insensitive, the first spelling kept.
    assert visit.sdk("addTag", "News")["tags"] == ["News"]
    assert visit.sdk("addTag", "news")["tags"] == ["News"]
    assert visit.sdk("addTag", "sport/football")["tags"] == ["News", "sport/football"]
    assert visit.sdk("getTags") == ["News", "sport/football"]
    assert visit.sdk("removeTag", "SPORT/FOOTBALL")["tags"] == ["News"]
    error = visit.sdk_error("removeTag", "never-added")
    assert (error["code"], error["status"]) == ("tag_not_on_subscriber", 422)
    assert error["message"] == "The follower doesn't have this tag!"
    assert visit.sdk("setTags", ["b", "Apple", "APPLE"])["tags"] == ["Apple", "b"]
    error = visit.sdk_error("addTag", "t" * 256)
    assert (error["code"], error["status"]) == ("alias_too_long", 422)
    assert visit.sdk("removeAllTags")["tags"] == []
    assert visit.sdk("getTags") == []

    # The demo page's own buttons.
    page.fill("#alias-input", "from-the-demo")
    page.click("#set-alias")
    visit.wait_for("document.getElementById('alias').textContent === 'from-the-demo'")
    page.fill("#tag-input", "Demo")
    page.click("#add-tag")
    visit.wait_for("document.getElementById('tags').textContent === 'Demo'")
    assert server.alias(reg_id)["alias"] == "from-the-demo"

    # The command queue keeps working after load, in both forms, in order.
    page.evaluate("""() => new Promise((resolve) => {
        Clarion.push(['addTag', 'queued'], ['removeTag', 'demo']);
        Clarion.push(function (clarion) { clarion.getTags().then(resolve); });
    })""")
    assert visit.sdk("getTags") == ["queued"]

    # The server's tag rules, seen from the server: a v3 push to the tag in another case reaches us.
    campaign_id = server.push(
        {
            "payload": {"message": "tagged", "redirect_url": "https://example.com/"},
            "audience": {"tags": ["QUEUED"]},
        }
    )
    [plaintext] = visit.received(1)
    assert json.loads(plaintext)["campaign_id"] == campaign_id

    # Unsubscribe.
    assert visit.sdk("unsubscribe") is True
    assert visit.sdk("isSubscribed") is False
    assert visit.sdk("getSubscription") is None
    assert server.alias(reg_id)["isActiveFollower"] == "false"
    error = visit.sdk_error("getTags")
    assert error["code"] == "not_subscribed"
    # Failed calls log the HTTP status on the console; nothing else went wrong.
    unexpected = [line for line in visit.console if "Failed to load resource" not in line]
    assert unexpected == [], visit.console


def test_a_campaign_is_shown_and_its_click_and_close_are_counted(visit: Visit) -> None:
    server = visit.server
    visit.open_demo()
    reg_id = visit.subscribe()
    visit.sdk("setTags", ["News"])
    landing = f"{server.url}/sdk/v1/demo?appKey={server.app_key}&from=push"
    campaign_id = server.push(
        {
            "payload": {
                "title": "Big news",
                "message": "Read all about it",
                "redirect_url": landing,
                "icon": f"{server.url}/no-such/icon.png",
                "image": f"{server.url}/no-such/image.png",
                "buttons": [
                    {"title": "Docs", "url": "https://example.com/docs"},
                    {"title": "Later", "url": "https://example.com/later"},
                ],
            },
            "audience": {"tags": ["news"]},
            "display_time": 0,
            "push_tag": "breaking",
        }
    )

    # The server encrypted it for this browser's keys; the push service decrypted it.
    [plaintext] = visit.received(1)
    payload = json.loads(plaintext)
    assert (payload["campaign_id"], payload["title"], payload["tag"]) == (campaign_id, "Big news", "breaking")
    visit.deliver(plaintext)

    [shown] = wait_until(visit.notifications, "the notification")
    assert shown["title"] == "Big news"
    assert shown["body"] == "Read all about it"
    assert shown["tag"] == "breaking"
    assert shown["icon"] == f"{server.url}/no-such/icon.png"
    assert shown["image"] == f"{server.url}/no-such/image.png"
    assert shown["requireInteraction"] is True  # display_time 0: until the user acts
    assert shown["actions"] == [
        {"action": "button-0", "title": "Docs"},
        {"action": "button-1", "title": "Later"},
    ]
    server.wait_for_stats(
        campaign_id, {"status": "SENT", "send": 1, "received": 1, "clicked": 0, "closed": 0}
    )

    # The landing page is open in a tab: a click focuses it; a button opens the button's URL.
    landing_tab = visit.context.new_page()
    landing_tab.goto(landing)
    worker = visit.worker()
    worker.evaluate("""async () => {
        self.__seen = [];
        const focus = WindowClient.prototype.focus;
        WindowClient.prototype.focus = function () {
            self.__seen.push('focus ' + this.url);
            return focus.call(this).catch(() => this);  // no user gesture here: focusing is refused
        };
        self.clients.openWindow = async (url) => { self.__seen.push('open ' + url); return null; };
        const [notification] = await self.registration.getNotifications();
        self.__notification = notification;
        self.dispatchEvent(new NotificationEvent('notificationclose', {notification}));
    }""")
    server.wait_for_stats(
        campaign_id, {"status": "SENT", "send": 1, "received": 1, "clicked": 0, "closed": 1}
    )

    worker.evaluate("""() => self.dispatchEvent(
        new NotificationEvent('notificationclick', {notification: self.__notification}))""")
    server.wait_for_stats(
        campaign_id, {"status": "SENT", "send": 1, "received": 1, "clicked": 1, "closed": 1}
    )
    wait_until(lambda: worker.evaluate("self.__seen.length") == 1, "the click to reach a window")
    assert worker.evaluate("self.__seen") == [f"focus {landing}"]
    assert visit.notifications() == []  # a click closes the notification

    worker.evaluate("""() => self.dispatchEvent(new NotificationEvent(
        'notificationclick', {notification: self.__notification, action: 'button-1'}))""")
    wait_until(lambda: worker.evaluate("self.__seen.length") == 2, "the button to open its URL")
    assert worker.evaluate("self.__seen")[1] == "open https://example.com/later"
    # Counted once per subscriber, campaign and type.
    server.wait_for_stats(
        campaign_id, {"status": "SENT", "send": 1, "received": 1, "clicked": 1, "closed": 1}
    )

    # The demo's test notification comes through the server's engine like any campaign.
    visit.page.click("#send-test")
    plaintexts = visit.received(2)
    test_payload = json.loads(plaintexts[1])
    assert (test_payload["title"], test_payload["tag"]) == (TEST_TITLE, TEST_PUSH_TAG)
    visit.deliver(plaintexts[1])
    [test_shown] = wait_until(visit.notifications, "the test notification")
    assert (test_shown["title"], test_shown["tag"]) == (TEST_TITLE, TEST_PUSH_TAG)
    assert test_shown["requireInteraction"] is False
    server.wait_for_stats(
        test_payload["campaign_id"], {"status": "SENT", "send": 1, "received": 1, "clicked": 0, "closed": 0}
    )

    # display_time > 0: the worker closes it when the time is up, and that is not the user closing it.
    brief = server.push(
        {
            "payload": {"title": "Brief", "message": "gone soon", "redirect_url": landing},
            "audience": {"tokens": [reg_id]},
            "display_time": 1,
        }
    )
    visit.deliver(visit.received(3)[2])
    wait_until(lambda: any(n["title"] == "Brief" for n in visit.notifications()), "the brief notification")
    wait_until(lambda: not any(n["title"] == "Brief" for n in visit.notifications()), "it to close", 10)
    server.wait_for_stats(brief, {"status": "SENT", "send": 1, "received": 1, "clicked": 0, "closed": 0})


def test_a_changed_push_subscription_keeps_the_regid_alias_and_tags(visit: Visit) -> None:
    server, fake = visit.server, visit.fake
    visit.open_demo()
    reg_id = visit.subscribe()
    visit.sdk("setAlias", "kept")
    visit.sdk("setTags", ["Kept"])

    # The push service renews the subscription: the worker subscribes again (here: to a new one the
    # test made) and re-registers it under the same regId, authorised by the old secret.
    renewed = fake.new_subscription(application_server_key=server.vapid_public_key)
    worker = visit.worker()
    worker.evaluate(
        """(json) => {
        PushManager.prototype.subscribe = async (options) => {
            self.__subscribedWith = options.applicationServerKey;
            return {endpoint: json.endpoint, toJSON: () => json};
        };
        self.dispatchEvent(new ExtendableEvent('pushsubscriptionchange'));
    }""",
        renewed.to_json(),
    )

    def moved() -> bool:
        answer = httpx.get(
            f"{server.url}/sdk/v1/subscribers/{reg_id}",
            params={"app_key": server.app_key},
            headers={AUTH_HEADER: renewed.auth},
            timeout=10,
        )
        return answer.status_code == 200

    wait_until(moved, "the subscriber to move to the new subscription")
    assert worker.evaluate("self.__subscribedWith !== undefined")
    assert server.alias(reg_id) == {
        "regIdExists": "true",
        "aliasExists": "true",
        "isActiveFollower": "true",
        "alias": "kept",
    }

    # The page sees the browser's new subscription under the same regId, with its tags.
    visit.page.evaluate("(json) => window.__fakePush.replace(json)", renewed.to_json())
    assert visit.sdk("getSubscription") == {
        "regId": reg_id,
        "endpoint": renewed.endpoint,
        "p256dh": renewed.p256dh,
        "auth": renewed.auth,
    }
    assert visit.sdk("getTags") == ["Kept"]

    # Campaigns now go to the new subscription only, and the worker still reports.
    campaign_id = server.push(
        {
            "payload": {"message": "still here", "redirect_url": "https://example.com/"},
            "audience": {"aliases": ["kept"]},
        }
    )
    [plaintext] = visit.received(1, renewed)
    assert fake.received_for(visit.subscription.sub_id) == []
    visit.deliver(plaintext)
    server.wait_for_stats(
        campaign_id, {"status": "SENT", "send": 1, "received": 1, "clicked": 0, "closed": 0}
    )


def test_init_errors_reach_the_page(visit: Visit) -> None:
    server = visit.server
    visit.page.goto(f"{server.url}/sdk/v1/demo")
    assert visit.page.is_visible("#no-app")
    error = visit.sdk_error("getTags")
    assert error["code"] == "not_initialized"
    visit.page.evaluate("Clarion.init({appKey: 'no-such-app'}).catch(() => null)")
    error = visit.sdk_error("subscribe")
    assert (error["code"], error["status"], error["field"]) == ("not_found", 404, "app_key")


def test_the_signed_in_user_is_bound_with_the_hash_its_backend_made(visit: Visit, artifacts: Path) -> None:
    """Identity verification from a page: the site's backend gives the page the HMAC of its user's id;
    init or login carries it; a missing or wrong hash binds nothing (docs/sdk.md, "Signed-in users")."""
    server, page = visit.server, visit.page
    visit.open_demo()
    key = server.identity_secret_key

    # The ids without their hashes: refused by the server (identity verification is on for new apps).
    page.evaluate("(appKey) => Clarion.init({appKey: appKey, userId: 'u-1'})", server.app_key)
    error = visit.sdk_error("subscribe")
    assert error == {
        "name": "ClarionError",
        "code": "identity_not_verified",
        "message": "user_id_hash must be the HMAC-SHA256 of the id keyed with the app's identity key",
        "field": "user_id_hash",
        "status": 403,
    }
    assert visit.sdk("getSubscription") is None  # nothing registered

    # init with the right hash: subscribing binds the user.
    options = {"appKey": server.app_key, "userId": "u-1", "userIdHash": id_hash(key, "u-1")}
    visit.sdk("init", options)
    reg_id = visit.subscribe()
    assert server.user_ids(reg_id) == ("u-1", None)

    # Later, the visitor signs in as someone else: a forged hash is refused and changes nothing ...
    forged = {"userId": "victim", "userIdHash": id_hash(key, "u-1")}
    error = visit.sdk_error("login", forged)
    assert (error["code"], error["field"], error["status"]) == ("identity_not_verified", "user_id_hash", 403)
    assert server.user_ids(reg_id) == ("u-1", None)
    # ... a bad argument is the SDK's own error, before any request ...
    error = visit.sdk_error("login", {"externalUserId": 42})
    assert (error["code"], error["field"], error["status"]) == ("invalid_field", "externalUserId", None)
    # ... and the right hashes bind both ids to the same subscriber.
    login = {
        "userId": "u-2",
        "userIdHash": id_hash(key, "u-2"),
        "externalUserId": "crm-77",
        "externalUserIdHash": id_hash(key, "crm-77").upper(),  # hex in either case
    }
    assert visit.sdk("login", login) == visit.sdk("getSubscription")
    assert visit.sdk("getSubscription")["regId"] == reg_id
    assert server.user_ids(reg_id) == ("u-2", "crm-77")
    # A new page load: the binding is the server's (the page gives its hashes again only to change it).
    visit.open_demo()
    visit.wait_for("document.body.dataset.state === 'subscribed'")
    assert page.inner_text("#reg-id") == reg_id
    page.screenshot(path=str(artifacts / "demo-signed-in.png"), full_page=True)
    assert server.user_ids(reg_id) == ("u-2", "crm-77")

    # Before subscribing, login keeps the ids for subscribe().
    visit.sdk("unsubscribe")
    assert visit.sdk("login", {"userId": "u-3", "userIdHash": id_hash(key, "u-3")}) is None
    again = visit.subscribe()
    assert server.user_ids(again) == ("u-3", "crm-77")
    # The page logged the refused requests (the browser's own lines), and no failed SDK command.
    assert not [line for line in visit.console if "[Clarion]" in line], visit.console


def test_set_attributes_and_the_browser_language_reach_the_server(visit: Visit) -> None:
    server, page = visit.server, visit.page
    visit.open_demo()
    reg_id = visit.subscribe()
    # The registration carried the browser's navigator.language (docs/personalization.md).
    with contextlib.closing(sqlite3.connect(server.database)) as connection:
        [language] = connection.execute(
            "SELECT language FROM subscribers WHERE reg_id = ?", (reg_id,)
        ).fetchone()
    assert language == page.evaluate("navigator.language")
    assert language

    assert visit.sdk("setAttributes", {"first_name": "Ada", "plan": "pro"}) == {
        "first_name": "Ada",
        "plan": "pro",
    }
    assert visit.sdk("setAttributes", {"plan": None, "city": "Paris"}) == {
        "city": "Paris",
        "first_name": "Ada",
    }
    assert visit.sdk("getAttributes") == {"city": "Paris", "first_name": "Ada"}
    error = visit.sdk_error("setAttributes", {"first name": "x"})
    assert error == {
        "name": "ClarionError",
        "code": "invalid_field",
        "message": "attributes.first name: a key is 1-64 letters, digits or '_', not starting with a digit",
        "field": "attributes.first name",
        "status": 422,
    }
    # What the app's backend reads through /v1 is what the browser set.
    answer = httpx.get(
        f"{server.url}/v1/apps/{server.app_key}/subscribers/{reg_id}/attributes", auth=server.auth, timeout=10
    )
    assert answer.json() == {"attributes": {"city": "Paris", "first_name": "Ada"}}


def test_a_vapid_key_rotation_keeps_old_subscriptions_and_moves_each_browser_on_its_next_page_view(
    visit: Visit, artifacts: Path
) -> None:
    server, fake, page = visit.server, visit.fake, visit.page
    visit.open_demo()
    reg_id = visit.subscribe()
    visit.sdk("setAlias", "rotating")
    visit.sdk("setTags", ["Kept"])
    own = httpx.Client(base_url=f"{server.url}/v1", auth=(server.app_key, server.app_secret), timeout=10)
    rotated = own.post(f"/apps/{server.app_key}/rotate-vapid")
    assert rotated.status_code == 200, rotated.text
    old_key, new_key = server.vapid_public_key, rotated.json()["keys"][0]["public_key"]
    assert rotated.json()["keys"][1]["public_key"] == old_key
    assert (rotated.json()["subscribers"], rotated.json()["on_current_key"]) == (1, 0)
    push = {
        "payload": {"message": "rotating", "redirect_url": "https://example.com/"},
        "audience": {"aliases": ["rotating"]},
    }

    # Not yet moved: the push service, which checks every VAPID token against the key the subscription
    # was made with, takes a message signed with the old key.
    server.push(push)
    [_] = visit.received(1)
    assert fake.received_for(visit.subscription.sub_id)[0].headers["authorization"].endswith(f"k={old_key}")

    # The next page view: the SDK sees the subscription was made with another key, subscribes again with
    # the new one (the push service hands out a new subscription) and keeps its regId, alias and tags.
    renewed = fake.new_subscription(application_server_key=new_key)
    page.evaluate(
        "(json) => localStorage.setItem('clarion-test-push-next', JSON.stringify(json))", renewed.to_json()
    )
    visit.open_demo()

    def moved() -> bool:
        answer = httpx.get(
            f"{server.url}/sdk/v1/subscribers/{reg_id}",
            params={"app_key": server.app_key},
            headers={AUTH_HEADER: renewed.auth},
            timeout=10,
        )
        return answer.status_code == 200

    wait_until(moved, "the subscriber to move to the subscription made with the new key")
    assert page.evaluate("window.__fakePush.subscribedWith()") == new_key
    assert visit.sdk("getSubscription")["regId"] == reg_id
    assert visit.sdk("getTags") == ["Kept"]
    server.push(push)
    [_] = visit.received(1, renewed)
    assert fake.received_for(renewed.sub_id)[0].headers["authorization"].endswith(f"k={new_key}")
    progress = own.get(f"/apps/{server.app_key}/vapid-keys").json()
    assert [(k["public_key"], k["current"], k["subscribers"]) for k in progress["keys"]] == [
        (new_key, True, 1),
        (old_key, False, 0),
    ]
    assert (progress["subscribers"], progress["on_current_key"]) == (1, 1)
    page.screenshot(path=str(artifacts / "demo-vapid-rotated.png"), full_page=True)
