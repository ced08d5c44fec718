"""Settings: the only reader of the environment. Each field is read from `CLARION_<FIELD>` (the field's
name in capitals); README.md, "Configuration", lists every one with its default and meaning."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from clarion import netpolicy

# The public Web Push services a browser subscription may point at (Chrome/Edge via FCM, Firefox,
# Safari, Windows/Edge legacy). Any other endpoint is refused at registration.
DEFAULT_PUSH_HOSTS = (
    "fcm.googleapis.com,android.googleapis.com,updates.push.services.mozilla.com,"
    "web.push.apple.com,*.notify.windows.com"
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLARION_", extra="ignore")

    # Storage and queue: SQLite or PostgreSQL; memory:// (one process, engine in-process) or redis://.
    database_url: str = "sqlite:///./clarion-data/clarion.db"
    queue_url: str = "memory://"
    # API requests: the bound on connecting to the database, on each statement and (SQLite) on waiting
    # for the write lock; past it the request answers 503 with Retry-After instead of hanging.
    db_timeout_s: float = Field(default=1.0, gt=0)
    # Comma-separated hosts a Web Push (or WNS) endpoint may point at; "*.example.com" for subdomains.
    push_hosts: str = DEFAULT_PUSH_HOSTS
    # CLARION_OUTBOUND_ALLOW: hosts, addresses or CIDR ranges that outbound connections chosen by
    # customers (push endpoints, WNS channels, pictures, webhooks) may reach although they are loopback
    # or private; everything else non-public is refused at connect time (docs/security.md).
    outbound_allow: str = Field(
        default="",
        description="comma-separated hosts, IP addresses or CIDR ranges reachable although private",
    )
    # The native push services' origins (tests and staging point them at local fakes).
    fcm_url: str = "https://fcm.googleapis.com"
    apns_url: str = "https://api.push.apple.com"
    wns_url: str = "https://login.live.com"
    adm_url: str = "https://api.amazon.com"
    # A PEM file of extra CAs trusted for outbound calls to push services, beside the system's.
    ca_file: str | None = None
    # Swrve batches accepted per app per minute; more are answered 429 with Retry-After.
    batch_rate_per_minute: int = 60
    # How long a Swrve batch may wait to be processed before its users are reported as too late.
    batch_time_limit_s: float = Field(default=600.0, gt=0)
    # Abuse limits on the public subscriber API (registration, events), per client address (an IPv6
    # client by its /64) and per app, in requests a minute (0: no limit), kept per serving process.
    subscriber_register_per_ip_per_minute: int = Field(default=60, ge=0)
    subscriber_register_per_app_per_minute: int = Field(default=6000, ge=0)
    subscriber_events_per_ip_per_minute: int = Field(default=1200, ge=0)
    subscriber_events_per_app_per_minute: int = Field(default=300_000, ge=0)
    # Clients (or apps) each limit remembers at most: it bounds the limits' memory.
    subscriber_rate_limit_keys: int = Field(default=100_000, ge=1)
    # The admin API's bearer token; unset, one is generated, stored hashed and printed once.
    admin_token: str | None = None
    # Keys that encrypt stored secrets (provider credentials, VAPID private keys): one or more 32-byte
    # URL-safe base64 keys, comma-separated, newest first. Unset: the key file below (docs/security.md).
    secret_key: SecretStr | None = None
    # The key file used when CLARION_SECRET_KEY is unset; by default secret.keys beside the SQLite
    # database (./clarion-data/secret.keys for PostgreSQL), generated on first start with mode 0600.
    secret_key_file: str | None = None

    # VAPID `sub` claim (RFC 8292 §2.1): a contact for the push service operator.
    vapid_subject: str = "mailto:admin@localhost"
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

    @field_validator("outbound_allow")
    @classmethod
    def _outbound_allow_parses(cls, value: str) -> str:
        netpolicy.parse_entries(value)  # a typo fails at start-up, not at the first connection
        return value

    @model_validator(mode="after")
    def _renewed_before_the_lease_lapses(self) -> Settings:
        if self.delivery_renew_s >= self.delivery_lease_s:
            raise ValueError("CLARION_DELIVERY_RENEW_S must be shorter than CLARION_DELIVERY_LEASE_S")
        return self

    def push_host_set(self) -> frozenset[str]:
        return frozenset(h.strip().lower() for h in self.push_hosts.split(",") if h.strip())
