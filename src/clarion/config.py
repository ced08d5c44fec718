"""Settings: the only reader of the environment. Each field is read from `CLARION_<FIELD>` (the field's
name in capitals); README.md, "Configuration", lists every one with its default and meaning."""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import platformdirs
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from clarion import netpolicy

# The public Web Push services a browser subscription may point at (Chrome/Edge via FCM, Firefox,
# Safari, Windows/Edge legacy). Any other endpoint is refused at registration.
DEFAULT_PUSH_HOSTS = (
    "fcm.googleapis.com,android.googleapis.com,updates.push.services.mozilla.com,"
    "web.push.apple.com,*.notify.windows.com"
)
ENV_PREFIX = "CLARION_"
# Variables of the test suite, read by the tests themselves rather than by Settings.
NOT_SETTINGS = ("CLARION_TEST_", "CLARION_FUZZ_")
DATABASE_FILE_NAME = "clarion.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    # Where Clarion keeps its files: the default SQLite database and, with PostgreSQL, the key file and
    # the admin token file. Unset: the per-user data directory (platformdirs), absolute, so every
    # command finds the same database whatever its working directory.
    data_dir: str | None = None
    # Storage and queue: SQLite or PostgreSQL; memory:// (one process, engine in-process) or redis://.
    # Empty: clarion.db in the data directory (filled in below).
    database_url: str = ""
    queue_url: str = "memory://"
    # API requests: the bound on connecting to the database, on each statement and (SQLite) on waiting
    # for the write lock; past it the request answers 503 with Retry-After instead of hanging.
    db_timeout_s: float = Field(default=1.0, gt=0)
    # Comma-separated hosts a Web Push (or WNS) endpoint may point at; "*.example.com" for subdomains.
    push_hosts: str = DEFAULT_PUSH_HOSTS
    # More hosts, added to CLARION_PUSH_HOSTS (which, when set, replaces the default list).
    push_hosts_extra: str = ""
    # CLARION_OUTBOUND_ALLOW: hosts, addresses or CIDR ranges that outbound connections chosen by
    # customers (push endpoints, WNS channels, pictures, webhooks) may reach although they are loopback
    # or private; everything else non-public is refused at connect time (docs/security.md).
    outbound_allow: str = Field(
        default="",
        description="comma-separated hosts, IP addresses or CIDR ranges reachable although private",
    )
    # CLARION_PUBLIC_URL: the base URL at which browsers reach this server (https://push.example.com,
    # or with a path prefix behind a proxy). Processed notification pictures are served under it
    # (`/pictures/…`); unset, pictures go out as their original URLs, unprocessed (pictures/).
    public_url: str | None = None
    # Fetching a notification picture (an address the customer chose, judged like every outbound
    # connection): the whole fetch's time limit, and the largest picture read (5 MB, as the issue asks:
    # far above a notification picture's size, far below what could exhaust a worker's memory).
    picture_timeout_s: float = Field(default=10.0, gt=0)
    picture_max_bytes: int = Field(default=5 * 1024 * 1024, ge=1)
    # The native push services' origins (tests and staging point them at local fakes).
    fcm_url: str = "https://fcm.googleapis.com"
    apns_url: str = "https://api.push.apple.com"
    wns_url: str = "https://login.live.com"
    adm_url: str = "https://api.amazon.com"
    # sink: every message is built and encrypted as for real, then recorded as delivered without being
    # sent (users' CI and staging); nothing leaves the machine.
    delivery: Literal["real", "sink"] = "real"
    # A PEM file of extra CAs trusted for outbound calls to push services, beside the system's.
    ca_file: str | None = None
    # Swrve batches accepted per app per minute; more are answered 429 with Retry-After.
    batch_rate_per_minute: int = 60
    # A Swrve batch's execution time limit, from its acceptance: users processed and devices attempted
    # after it are not sent but reported "Exceeded time limit by {n} ms" (docs/swrve-batch.md).
    batch_time_limit_s: float = Field(default=600.0, gt=0)
    # Abuse limits on the public subscriber API (registration, events), per client address (an IPv6
    # client by its /64) and per app, in requests a minute (0: no limit), kept per serving process.
    subscriber_register_per_ip_per_minute: int = Field(default=60, ge=0)
    subscriber_register_per_app_per_minute: int = Field(default=6000, ge=0)
    subscriber_events_per_ip_per_minute: int = Field(default=1200, ge=0)
    subscriber_events_per_app_per_minute: int = Field(default=300_000, ge=0)
    # Clients (or apps) each limit remembers at most: it bounds the limits' memory.
    subscriber_rate_limit_keys: int = Field(default=100_000, ge=1)
    # The admin API's bearer token; unset, one is generated, stored hashed, printed once and kept in
    # the file admin.token (0600) beside the key file (`clarion admin-token` shows it).
    admin_token: str | None = None
    # Keys that encrypt stored secrets (provider credentials, VAPID private keys): one or more 32-byte
    # URL-safe base64 keys, comma-separated, newest first. Unset: the key file below (docs/security.md).
    secret_key: SecretStr | None = None
    # The key file used when CLARION_SECRET_KEY is unset; by default secret.keys in files_dir() (beside
    # the SQLite database, or in the data directory), generated on first start with mode 0600.
    secret_key_file: str | None = None

    # VAPID `sub` claim (RFC 8292 §2.1): a contact for the push service operator.
    vapid_subject: str = "mailto:admin@localhost"
    # Which Web Push subscriptions are sent the declarative form (docs/declarative-web-push.md): "auto"
    # those at Apple's push service, "declarative" every one, "classic" none.
    web_push_form: Literal["auto", "declarative", "classic"] = "auto"
    # Delivery engine tuning; the defaults suit one machine.
    worker_jobs: int = Field(default=4, ge=1)
    worker_concurrency: int = Field(default=64, ge=1)
    chunk_size: int = Field(default=500, ge=1)
    # How long work held without renewal stays held (a Swrve batch being processed); queued delivery
    # rows wait 10 x this before the sweep queues them again.
    lease_s: float = Field(default=30.0, gt=0)
    # Delivery rows a job holds, and a campaign's fan-out, are leased this long and renewed every
    # delivery_renew_s while their worker lives: a dead worker's rows move after one short lease. A Redis
    # queue entry a consumer took is taken over after as long (a job taken again claims only rows whose
    # lease lapsed, so a live worker's are safe).
    delivery_lease_s: float = Field(default=8.0, gt=0)
    delivery_renew_s: float = Field(default=2.0, gt=0)
    scheduler_interval_s: float = Field(default=0.2, gt=0)
    # Outbound calls to push services: connection setup, and the whole request. A push service answers
    # a push within a second or two; one that hangs holds a sending lane for the whole request timeout,
    # so this is also how long delivery may stay stuck after a hung push service answers again (8 s:
    # with the 1 s sweep, within the 10 s recovery target of issue #19).
    connect_timeout_s: float = Field(default=5.0, gt=0)
    request_timeout_s: float = Field(default=8.0, gt=0)
    # Retry back-off: the first delay, doubling with each attempt up to the longest.
    retry_base_s: float = Field(default=1.0, gt=0)
    retry_max_s: float = Field(default=600.0, gt=0)
    # Ledger retention: a finished campaign's per-recipient rows older than this many days are folded
    # into its counters and deleted (statistics unchanged; engagement events for it are refused from
    # then on). 0 keeps every row forever.
    ledger_retention_days: int = Field(default=30, ge=0)
    # FCM's default quota for the HTTP v1 API: 600,000 messages per minute per project (each app its
    # own project). Kept by every worker together (docs/pacing.md); 0: no limit of Clarion's.
    fcm_rate_per_minute: int = Field(default=600_000, ge=0)

    # Webhooks and the event feed (docs/webhooks.md): each request's total timeout, the first retry
    # delay (doubling up to an hour; a batch is given up after 24 hours of failures), and how many
    # days events are kept for replay and the feed.
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    webhook_retry_base_s: float = Field(default=5.0, gt=0)
    event_retention_days: int = Field(default=7, ge=2)
    # Token hygiene (docs/token-hygiene.md): a periodic job deactivates subscribers that this many
    # campaigns in a row could not reach (0: never), and Android (FCM) subscribers not registered again
    # for this many days (FCM's own horizon: it expires tokens inactive for 270 days; 0: never); it runs
    # every hygiene_every_s.
    hygiene_failure_streak: int = Field(default=5, ge=0)
    fcm_inactive_days: int = Field(default=270, ge=0)
    hygiene_every_s: float = Field(default=3600.0, gt=0)

    # Observability (docs/operations.md). Logs: `text` or `json` (unset: text on a terminal, else
    # JSON), at debug, info, warning or error.
    log_format: Literal["text", "json"] | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # A bearer token /metrics requires when set (401 without it); unset, /metrics is open.
    metrics_token: SecretStr | None = None
    # A `clarion worker` serves /metrics on this port (unset: not at all) and address; `clarion serve`
    # serves it on its own HTTP port.
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    metrics_host: str = "127.0.0.1"

    @field_validator("log_format", "log_level", mode="before")
    @classmethod
    def _lower_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _database_url_parses(cls, value: str) -> str:
        if not value:
            return value
        try:
            backend = make_url(value).get_backend_name()
        except ArgumentError:
            raise ValueError("not a database URL (sqlite:///PATH or postgresql://...)") from None
        if backend not in ("sqlite", "postgresql", "postgres"):
            raise ValueError(f"{backend} is not supported: use sqlite:///PATH or postgresql://...")
        return value

    @field_validator("queue_url")
    @classmethod
    def _queue_url_known(cls, value: str) -> str:
        if value.split("://", 1)[0] not in ("memory", "redis", "rediss"):
            raise ValueError("must be memory:// or redis://host:port/db")
        return value

    @field_validator("outbound_allow")
    @classmethod
    def _outbound_allow_parses(cls, value: str) -> str:
        netpolicy.parse_entries(value)  # a typo fails at start-up, not at the first connection
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url_is_a_base(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parsed = urlsplit(value.strip())
        if parsed.scheme not in ("http", "https") or not parsed.netloc or parsed.query or parsed.fragment:
            raise ValueError("must be an http(s) base URL such as https://push.example.com")
        return value.strip().rstrip("/")

    @model_validator(mode="after")
    def _database_in_the_data_directory(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_path() / DATABASE_FILE_NAME}"
        return self

    @model_validator(mode="after")
    def _renewed_before_the_lease_lapses(self) -> Settings:
        if self.delivery_renew_s >= self.delivery_lease_s:
            raise ValueError("CLARION_DELIVERY_RENEW_S must be shorter than CLARION_DELIVERY_LEASE_S")
        return self

    def push_host_set(self) -> frozenset[str]:
        hosts = f"{self.push_hosts},{self.push_hosts_extra}"
        return frozenset(h.strip().lower() for h in hosts.split(",") if h.strip())

    def data_path(self) -> Path:
        """CLARION_DATA_DIR, else the per-user data directory (~/.local/share/clarion on Linux)."""
        chosen = self.data_dir or platformdirs.user_data_dir("clarion", appauthor=False)
        return Path(chosen).expanduser().absolute()

    def files_dir(self) -> Path:
        """Where the key file and the admin token file live: beside a SQLite database file (where
        they always were), else in the data directory."""
        database = sqlite_file(self.database_url)
        return database.parent if database is not None else self.data_path()


def sqlite_file(database_url: str) -> Path | None:
    """The file of a `sqlite:///PATH` URL; None for other databases and in-memory SQLite."""
    parsed = make_url(database_url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).absolute()


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """A warning for each CLARION_* variable that no setting reads (a typo would else be silently
    ignored), naming the closest known variable."""
    environ = os.environ if environ is None else environ
    known = [ENV_PREFIX + name.upper() for name in Settings.model_fields]
    warnings = []
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name in known or name.startswith(NOT_SETTINGS):
            continue
        # Compared without the prefix, which every name shares and which would make any two close.
        close = difflib.get_close_matches(
            name.removeprefix(ENV_PREFIX).lower(), list(Settings.model_fields), n=1
        )
        hint = f" (did you mean {ENV_PREFIX}{close[0].upper()}?)" if close else ""
        warnings.append(f"unknown setting {name} is ignored{hint}")
    return warnings
