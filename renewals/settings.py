"""One settings object for the whole service, read from the environment (prefix RENEWALS_)."""

from __future__ import annotations

from datetime import time
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from renewals.alerts import AlertConfig
from renewals.channels.email import EmailConfig
from renewals.channels.email_http import EmailApiConfig
from renewals.channels.portal_http import PortalHttpConfig
from renewals.channels.robot_http import RobotHttpConfig
from renewals.channels.smsc import SmscConfig
from renewals.channels.vk import VkConfig
from renewals.experiments.config import Experiment
from renewals.models import Channel
from renewals.sendwindow import SendWindow
from renewals.sla.notices_config import SlaContacts
from renewals.webhooks.native.config import NativeCallbacks

if TYPE_CHECKING:
    from renewals.intake.start_plan import GateRates


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RENEWALS_", env_file=".env", extra="ignore", env_nested_delimiter="__"
    )

    # Temporal: the embedded dev server by default; a self-hosted cluster or Temporal Cloud by config.
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_api_key: SecretStr | None = None  # Temporal Cloud; implies TLS
    temporal_tls: bool = False
    temporal_tls_cert: Path | None = None  # mTLS client certificate (PEM)
    temporal_tls_key: Path | None = None  # mTLS client key (PEM)
    temporal_tls_ca: Path | None = None  # the server's CA, when not a public one
    temporal_tls_server_name: str | None = None
    temporal_profile: str | None = None  # a profile of Temporal's own temporal.toml (envconfig)
    temporal_config_file: Path | None = None
    task_queue: str = "renewals"
    # How long a CLI command waits for one Temporal call (the server, or a worker's answer to an update)
    # before it gives up with one line saying what it waited for. Services never time out this way.
    temporal_call_timeout_seconds: float = 30.0
    # Worker tuning (docs/performance.md). The sticky cache must hold the journeys awake at once: a
    # journey evicted mid-touchpoint replays its history on every workflow task. Unsandboxed, a cached
    # journey costs ≈ 100 KiB of RSS. The sandbox (workflows/runner.py) re-imports the workflow modules per
    # run; tests always use it, production may (`true`) at ≈ half the burst drain. A channel worker
    # with more slots than its provider can serve only queues sends inside the process (Little's law).
    workflow_cache_size: int = 1000
    workflow_sandbox: bool = False
    channel_activity_slots: int = 20
    # A stopping worker (SIGINT or SIGTERM, renewals/shutdown.py) lets the sends in hand finish for up
    # to this long — one attempt's time-out (workflows/retries.py) — before it cancels them. A cancelled
    # send is retried by another worker and never sent twice (the outbox), but one cut off mid-request
    # leaves the provider unsure, and the retry waits its back-off. The supervisor must wait longer:
    # systemd's TimeoutStopSec=60, `docker stop -t 45`, Kubernetes' terminationGracePeriodSeconds ≥ 45.
    worker_shutdown_grace_seconds: float = 30

    # The application database: SQLite file by default, PostgreSQL in production.
    database_url: str = "sqlite+aiosqlite:///.data/renewals.db"

    # Where messages go: "database" (records them in the app database: simulate, tests), "gateway"
    # (the real adapters against the fake providers, `python -m fake_providers`), "providers" (the real
    # providers below).
    channels: Literal["database", "gateway", "providers"] = "database"
    gateway_url: str = "http://127.0.0.1:8900"
    gateway_smtp_port: int = 8925

    # Real providers, each the adapter's own config (e.g. RENEWALS_SMSC__LOGIN, RENEWALS_VK__GROUP_ID).
    smsc: SmscConfig | None = None
    smsc_backup: SmscConfig | None = None  # a second SMS gateway: failover on provider-level failures
    smsc_backups: list[SmscConfig] = []  # more, tried in order after smsc_backup (JSON list)
    vk: VkConfig | None = None
    smtp: EmailConfig | None = None
    robot: RobotHttpConfig | None = None
    portal: PortalHttpConfig | None = None
    # HTTP e-mail provider (issue 13; renewals/channels/email_http.py, docs/providers.md): Unisender Go's
    # Web API with an idempotency key and status webhooks (RENEWALS_EMAIL_API__API_KEY,
    # RENEWALS_EMAIL_API__SENDER_ADDRESS, …). With `smtp` configured too, SMTP is its fallback.
    email_api: EmailApiConfig | None = None
    # channels=gateway: e-mail through the fake SMTP sink ("smtp"), or the fake Unisender Go API with
    # the sink as fallback ("api"; the fake then reports deliveries and opens to /webhooks/email-api).
    gateway_email: Literal["smtp", "api"] = "smtp"
    provider_timeout_seconds: float = 10.0  # for the adapters pointed at the fake providers
    channel_pause_minutes: float = 15.0  # how long "no funds" / "auth failed" pauses a channel

    # Operations: daily intake, webhooks (one shared secret per source: sms, email, vk, robot,
    # portal, operators — RENEWALS_WEBHOOK_SECRETS='{"sms": "…", …}').
    intake_horizon_days: int = 60
    intake_schedule_at: time = time(7, 0)
    intake_schedule_timezone: str = "Europe/Moscow"
    webhook_secrets: dict[str, SecretStr] = {}
    webhooks_host: str = "127.0.0.1"
    webhooks_port: int = 8080
    # Providers' own callback formats (issue 13; renewals/webhooks/native, docs/providers.md): SMSC's
    # handler key, the VK Callback API's secret and confirmation string, the robot vendor's secret
    # (RENEWALS_NATIVE_CALLBACKS__SMSC_KEY, __VK_SECRET, __VK_CONFIRMATION, __ROBOT_SECRET, …).
    native_callbacks: NativeCallbacks = NativeCallbacks()
    # Partner SLA notices and alerts (issue 13; renewals/sla/notices*.py, renewals/alerts.py,
    # docs/configuration.md): who gets the SLA's warnings, hand-overs and process flags
    # (RENEWALS_SLA_CONTACTS='{"people": {…}, "roles": {…}, "duty_email": …, "urgent_phone": …,
    # "partner_cabinet": {"url": …, "secret": …}}'; required with channels=providers), and where
    # channel-pause / provider alerts go besides the log (RENEWALS_ALERTS__EMAILS='["ops@…"]',
    # RENEWALS_ALERTS__WEBHOOK_URL, RENEWALS_ALERTS__WEBHOOK_SECRET).
    sla_contacts: SlaContacts | None = None
    alerts: AlertConfig = AlertConfig()

    # Personal data (152-FZ; renewals/encryption). Keys "id:base64(32 bytes)", the first one encrypts new
    # payloads, the others only decrypt (rotation: put the new key first, keep the old ones after it).
    # Without keys, the development keyring data_dir/encryption-keys.json (made on first use).
    encryption_keys: list[SecretStr] = []
    encryption_key_file: Path | None = None  # a JSON list of {"id", "key"} or "id:base64" lines
    data_dir: Path = Path(".data")  # development state: the dev keyring
    codec_server_port: int = 8081  # the codec server the Temporal UI decodes payloads through
    codec_server_token: SecretStr | None = None  # the bearer token the codec server requires
    ui_origin: str = "http://127.0.0.1:8233"  # the only origin the codec server answers (CORS)
    optout_hash_key: SecretStr | None = None  # HMAC key of the do-not-contact list (None: a dev key)
    temporal_retention_days: int = 90  # how long the namespace keeps closed workflows' histories

    # Provider rate limits, sends per second across all workers (None: unlimited).
    sms_per_second: float | None = None
    email_per_second: float | None = None
    vk_per_second: float | None = 20.0  # VK allows 20 requests/s per community; a send is one request
    robot_per_second: float | None = None

    # Send window in the client's local time (weekdays / weekends and public holidays).
    window_working_start: time = time(8, 0)
    window_working_end: time = time(22, 0)
    window_non_working_start: time = time(9, 0)
    window_non_working_end: time = time(20, 0)
    # Each journey's sends due at a window's opening go out at a stable offset into its first N minutes,
    # so a morning's wake-ups never queue. Size it: N ≥ wake-ups at one opening / (0.8 × the worker
    # fleet's drain rate, journeys/s) / 60 (docs/performance.md); 60 covers ≈ 57,000 at one worker's 20/s.
    window_spread_minutes: int = 60

    # Observability (issue 15; renewals/observability, docs/observability.md): the worker's Prometheus
    # endpoint (the SDK's temporal_* and our renewals_* metrics; "" turns it off), its health endpoint
    # (/health/live, /health/ready), how often it reads the database gauges (outbox backlog, pauses,
    # stages, operator tasks), and the log format ("auto": JSON unless stderr is a terminal).
    metrics_address: str = "127.0.0.1:9464"
    worker_health_address: str = "127.0.0.1:9465"
    metrics_poll_seconds: float = 15.0
    log_format: Literal["auto", "json", "text"] = "auto"
    log_level: str = "INFO"

    # Holdout experiments (renewals/experiments, docs/experiments.md): a JSON list of experiments, each
    # {"name", "hold_out": [groups or templates], "share", "starts_on", "ends_on", "unit", "salt"}.
    experiments: list[Experiment] = []
    # The agent gate's rates: "card" (imported on the agent card) or "measured" (this system's own
    # outcomes over the trailing window, where an agent has enough finished policies in a line).
    gate_rates: Literal["card", "measured"] = "card"
    gate_rates_window_days: int = 365
    gate_rates_min_policies: int = 30

    def gate(self) -> GateRates:
        from renewals.intake.start_plan import GateRates

        measured = self.gate_rates == "measured"
        return GateRates(measured, self.gate_rates_window_days, self.gate_rates_min_policies)

    def rates(self) -> dict[Channel, float | None]:
        return {
            Channel.SMS: self.sms_per_second,
            Channel.EMAIL: self.email_per_second,
            Channel.VK: self.vk_per_second,
            Channel.ROBOT_CALL: self.robot_per_second,
        }

    def send_window(self) -> SendWindow:
        """The `window_*` settings, one for each field of `SendWindow`."""
        return SendWindow(**{name: getattr(self, f"window_{name}") for name in SendWindow.model_fields})


@cache
def get_settings() -> Settings:
    return Settings()
