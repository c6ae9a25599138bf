"""Alerts for a human: a paused channel, a paused provider — to the log and to a configured destination.

Raised today by `renewals.delivery.ChannelPauses` (a provider refused our account: no funds, bad
credentials — the whole channel waits) and `renewals.channels.failover.FailoverProvider` (one
provider of a chain refused us; the others carry on). Each alert is

- **logged** at ERROR as `ALERT …`, always;
- **sent** to `RENEWALS_ALERTS__EMAILS` (through the channels' e-mail provider) and/or
  `RENEWALS_ALERTS__WEBHOOK_URL` (JSON, `X-Signature: sha256=<hex HMAC-SHA256(secret, body)>` with
  `RENEWALS_ALERTS__WEBHOOK_SECRET`, and `Idempotency-Key`), in the background: a send never waits
  for an alert, and a destination that is down is logged, never raised;
- **once per pause**, not once per send attempt: the pause that starts it is the key (a channel
  pause is started by exactly one worker, see `ChannelPauses.pause_channel`; a failover provider's
  pause is per process), and a key already raised in this process is not sent again;
- **free of personal data**: a channel, a provider name, an error type and a time — never the
  provider's message text (it may quote an address), a recipient or a client text.

When the paused channel is e-mail itself, the alert is not e-mailed (it could not go out); the
webhook still carries it. Configure the webhook if e-mail is your only alert destination's channel.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from functools import cache

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from renewals.activity_io import SendRequest
from renewals.channels.base import PermanentSendError, Provider
from renewals.channels.email import parse_address
from renewals.models import Channel
from renewals.privacy import mask_email
from renewals.webhooks.auth import SIGNATURE_HEADER, sign

log = logging.getLogger(__name__)
ALERTS_JOURNEY = "alerts"  # the journey id of alert e-mails' SendRequests (their dedup keys' prefix)


class AlertConfig(BaseModel):
    """Where alerts go besides the log (`RENEWALS_ALERTS__…`); empty: the log only."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    emails: list[str] = []
    webhook_url: str | None = Field(None, max_length=2000)
    webhook_secret: SecretStr | None = None
    timeout_seconds: float = Field(5.0, gt=0, le=60)
    attempts: int = Field(3, ge=1, le=10)  # webhook attempts on 5xx / timeouts, then logged and dropped

    @field_validator("emails")
    @classmethod
    def _emails(cls, values: list[str]) -> list[str]:
        for index, value in enumerate(values):
            try:
                parse_address(value)
            except PermanentSendError:
                raise ValueError(f"emails[{index}]: not an e-mail address") from None
        return [value.strip() for value in values]

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    def problem(self) -> str | None:
        """A webhook needs its secret: an unsigned alert could be forged by anyone who finds the URL."""
        if self.webhook_url is not None and self.webhook_secret is None:
            return "RENEWALS_ALERTS__WEBHOOK_URL is set without RENEWALS_ALERTS__WEBHOOK_SECRET"
        return None


class Alert(BaseModel):
    """What a human must know, and nothing personal: the kind, the channel or provider, the error's
    type (e.g. `InsufficientFunds`), until when."""

    model_config = ConfigDict(frozen=True)

    key: str  # one alert per key: the pause that raised it
    kind: str  # "channel_paused" | "provider_paused"
    error_type: str
    channel: str | None = None
    provider: str | None = None
    until: datetime | None = None

    @property
    def summary(self) -> str:
        """E.g. "channel sms paused until … (InsufficientFunds)", "provider sms-failover/smsc paused …"."""
        where = f"channel {self.channel}" if self.channel else f"provider {self.provider or '?'}"
        until = f" until {self.until.isoformat(timespec='seconds')}" if self.until else ""
        return f"{where} paused{until} ({self.error_type})"

    def payload(self) -> dict[str, str | None]:
        return {
            "key": self.key,
            "kind": self.kind,
            "channel": self.channel,
            "provider": self.provider,
            "error_type": self.error_type,
            "until": self.until.isoformat() if self.until else None,
            "summary": self.summary,
        }


class Alerts:
    """The sink (see the module docstring). `email` is the channels' e-mail provider (the worker
    attaches it with `configure_alerts`); `client` the HTTP client of the webhook (tests pass one)."""

    def __init__(
        self,
        config: AlertConfig | None = None,
        email: Provider | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.config = config or AlertConfig()
        self.email = email
        self._client = client
        self._raised: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.delivered: list[tuple[str, str]] = []  # (destination kind, alert key), for tests and ops

    def raise_alert(self, alert: Alert) -> bool:
        """Log it and send it in the background; False (nothing done) if its key was raised before."""
        if alert.key in self._raised:
            return False
        self._raised.add(alert.key)
        log.error("ALERT %s", alert.summary)
        if not (self.config.emails or self.config.webhook_url):
            return True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop (a synchronous caller): the log line is all
            return True
        task = loop.create_task(self._deliver(alert))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def drain(self) -> None:
        """Wait for every alert being sent (tests; shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _deliver(self, alert: Alert) -> None:
        """Every destination on its own: one that is down is logged and never stops the others."""
        jobs = []
        if self.config.webhook_url is not None:
            jobs.append(self._webhook(alert, self.config.webhook_url))
        if self.config.emails:
            if alert.channel == Channel.EMAIL.value:
                log.warning("alert %s not e-mailed: the e-mail channel is the paused one", alert.key)
            elif self.email is None:
                log.warning("alert %s not e-mailed: no e-mail provider attached", alert.key)
            else:
                jobs += [self._mail(alert, self.email, address) for address in self.config.emails]
        await asyncio.gather(*jobs)

    async def _mail(self, alert: Alert, provider: Provider, address: str) -> None:
        request = SendRequest(
            journey_id=ALERTS_JOURNEY,
            touchpoint=alert.key[:64],
            channel=Channel.EMAIL,
            template="alert",
            recipient=address,
            subject=f"ALERT {alert.summary}"[:200],
            text=f"{alert.summary}\n\nSee the worker's log and docs/operations.md (channel pauses).",
        )
        try:
            async with asyncio.timeout(self.config.timeout_seconds * self.config.attempts):
                await provider.deliver(request)
        except Exception as error:  # the alert destination is down: log, never raise
            log.error("alert %s not e-mailed to %s: %s", alert.key, mask_email(address), type(error).__name__)
            return
        self.delivered.append(("email", alert.key))

    async def _webhook(self, alert: Alert, url: str) -> None:
        secret = self.config.webhook_secret
        if secret is None:
            log.error(
                "alert %s not posted: the webhook has no secret (RENEWALS_ALERTS__WEBHOOK_SECRET)", alert.key
            )
            return
        body = json.dumps({**alert.payload(), "raised_at": datetime.now(UTC).isoformat()}).encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(secret.get_secret_value(), body),
            "Idempotency-Key": alert.key,
        }
        client = self._client or httpx.AsyncClient(timeout=self.config.timeout_seconds)
        try:
            for attempt in range(self.config.attempts):
                if attempt:
                    await asyncio.sleep(0.5 * 2**attempt)
                try:
                    response = await client.post(url, content=body, headers=headers)
                except httpx.HTTPError as error:
                    log.warning(
                        "alert %s: webhook attempt %d failed: %s",
                        alert.key,
                        attempt + 1,
                        type(error).__name__,
                    )
                    continue
                if response.status_code < 300:
                    self.delivered.append(("webhook", alert.key))
                    return
                log.warning("alert %s: webhook answered HTTP %d", alert.key, response.status_code)
                if response.status_code < 500 and response.status_code not in (408, 429):
                    break  # refused: the same request would be refused again
            log.error("alert %s not delivered to the webhook", alert.key)
        finally:
            if self._client is None:
                await client.aclose()


_sink: Alerts | None = None


@cache
def _from_settings() -> Alerts:
    from renewals.settings import get_settings  # the settings object holds AlertConfig: import late

    config = get_settings().alerts
    if (problem := config.problem()) is not None:
        log.error("alerts: %s; alerts go to the log and e-mail only", problem)
    return Alerts(config)


def current_alerts() -> Alerts:
    """The process's sink: what `configure_alerts` set, else one from the settings (log only by
    default). Pauses and failover chains take it when they are not given their own."""
    return _sink if _sink is not None else _from_settings()


def configure_alerts(config: AlertConfig, email: Provider | None = None) -> Alerts:
    """The worker's sink: the settings' destinations, e-mail through the channels' e-mail provider.
    Refuses a webhook without a secret (ValueError): an unsigned alert is a forgeable one."""
    global _sink
    if (problem := config.problem()) is not None:
        raise ValueError(problem)
    _sink = Alerts(config, email=email)
    return _sink
