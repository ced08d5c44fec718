"""A client generated from /openapi.json by openapi-python-client drives a whole flow over real HTTP:
the schema is complete enough for a generator, and the generated models read Clarion's answers."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from tests.v1.conftest import ADMIN_TOKEN, V1

PACKAGE = "clarion_client"


@pytest.fixture(scope="module")
def generated(v1: V1, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    generator = shutil.which("openapi-python-client", path=str(Path(sys.executable).parent))
    if generator is None:
        pytest.skip("openapi-python-client is not installed (pip install '.[test]')")
    root = tmp_path_factory.mktemp("generated")
    (root / "openapi.json").write_bytes(httpx.get(f"{v1.server.url}/openapi.json", timeout=10).content)
    (root / "config.yml").write_text(f"post_hooks: []\npackage_name_override: {PACKAGE}\n")
    done = subprocess.run(
        [generator, "generate", "--path", "openapi.json", "--config", "config.yml", "--meta", "none",
         "--output-path", PACKAGE],
        cwd=root, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Warning" not in done.stdout, done.stdout  # every operation and schema was understood
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(root))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def test_a_generated_client_creates_an_app_and_a_campaign_and_cancels_it(
    v1: V1, generated: ModuleType
) -> None:
    api = importlib.import_module(f"{PACKAGE}.api.apps.create_app")
    campaigns = {
        name: importlib.import_module(f"{PACKAGE}.api.campaigns.{name}")
        for name in (
            "create_campaign",
            "list_campaigns",
            "show_campaign",
            "cancel_campaign",
            "audience_dry_run",
        )
    }
    models = importlib.import_module(f"{PACKAGE}.models")
    base = v1.server.url
    admin = generated.AuthenticatedClient(base_url=base, token=ADMIN_TOKEN, raise_on_unexpected_status=True)
    created = api.sync(client=admin, body=models.AppCreate(name="generated"), idempotency_key="gen-1")
    assert isinstance(created, models.AppCreated)
    assert (created.name, created.plan) == ("generated", "unlimited")

    own = generated.Client(base_url=base, httpx_args={"auth": (created.app_key, created.app_secret)})
    body = models.CampaignIn(
        payload=models.PayloadIn(message="Hello", redirect_url="https://example.com/", title="Hi"),
        send_at=datetime.now(UTC) + timedelta(hours=1),
        platforms=[models.CampaignInPlatformsType0Item.WEB],
    )
    campaign = campaigns["create_campaign"].sync(app_key=created.app_key, client=own, body=body)
    assert isinstance(campaign, models.CampaignDetail)
    assert (campaign.status, campaign.title, campaign.platforms) == ("scheduled", "Hi", ["web"])
    assert campaign.funnel.audience == 0

    listed = campaigns["list_campaigns"].sync(app_key=created.app_key, client=own)
    assert [c.campaign_id for c in listed.items] == [campaign.campaign_id]
    dry = campaigns["audience_dry_run"].sync(app_key=created.app_key, client=own, body=models.AudienceQuery())
    assert (dry.total, dry.by_platform.additional_properties) == (
        0,
        {p: 0 for p in ("web", "android", "ios", "adm", "wns")},
    )
    cancelled = campaigns["cancel_campaign"].sync(
        app_key=created.app_key, campaign_id=int(campaign.campaign_id), client=own
    )
    assert cancelled.status == "cancelled"
    again = campaigns["cancel_campaign"].sync_detailed(
        app_key=created.app_key, campaign_id=int(campaign.campaign_id), client=own
    )
    assert again.status_code == 409
    assert isinstance(again.parsed, models.ErrorBody)
    assert again.parsed.error == "campaign_finished"
