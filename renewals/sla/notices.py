"""The partner SLA's notices through real channels, each sent once.

A notice (the warning before a breach, the hand-over of checklist step 3, the process-correction
flag of step 5) goes to the destination its channel names (`renewals.sla.notices_config`):

- `responsible`: e-mail (the channels' e-mail provider) to the stage's responsible person, else the
  role's mailbox, else the duty operator;
- `urgent`: SMS (the channels' SMS provider) to the dedicated urgent line;
- `partner`: a signed webhook to the partner cabinet (`PartnerCabinet`).

Exactly once, like every send: e-mail and SMS go through the renewal journey's one send path (the
outbox row, the provider's dedup key, reconciliation of a resumed row) under the key
`<application workflow id>:sla-<clock>-<kind>:<email|sms>` — one row per (application, step,
destination). The cabinet webhook claims its own outbox row (`…:partner_cabinet`) and sends the
same `Idempotency-Key` on every attempt; 2xx settles it, a 4xx is permanent (kept as failed, never
resent), 5xx, 408, 429 and transport errors are retried by the activity with the same key, so the
cabinet keeps one notice per key. A permanent refusal of any destination is logged (masked) and
reported in the step's finding; it never fails the journey.

The log notifier (`activities.sla.LogNotifier`) is for tests and `renewals sla simulate` only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Protocol

import httpx
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from temporalio.exceptions import ApplicationError

from renewals.activity_io import SendReceipt, SendRequest
from renewals.channels.errors import ProviderUnavailable, RateLimited, retry_after_seconds, transport_error
from renewals.channels.http_client import http_client
from renewals.db.database import Database
from renewals.db.tables import OutboxRow
from renewals.db.upsert import insert_ignoring_conflict
from renewals.models import Channel
from renewals.outbox import Outbox
from renewals.privacy import mask_address
from renewals.sla.models import PARTNER_CHANNEL, URGENT_CHANNEL, Duty
from renewals.sla.notices_config import PartnerCabinetConfig, SlaContacts
from renewals.webhooks.auth import SIGNATURE_HEADER, sign

log = logging.getLogger(__name__)
CABINET_CHANNEL = "partner_cabinet"  # the outbox rows' channel of the cabinet webhook
CABINET_PROVIDER = "partner-cabinet"
IDEMPOTENCY_HEADER = "Idempotency-Key"

# The renewal journey's send activity (`activities.renewal.JourneyActivities.send`), called directly
# from inside the SLA activity: the outbox, the providers, the pauses, the reconciliation.
Send = Callable[[SendRequest], Awaitable[SendReceipt]]


class EscalationNotice(BaseModel):
    """A message to a person or channel: the warning, the hand-over (step 3) or the process flag.

    `to` is whom the notice names (a person, the urgent line, the partner); `journey_id`, `clock`,
    `person` and `duty` let a notifier find the real destination and build the dedup key."""

    model_config = ConfigDict(frozen=True)

    dedup_key: str
    kind: str  # "warning" | "hand_over" | "process_flag"
    to: str
    text: str
    channel: str = "responsible"  # "responsible" | "urgent" | "partner"
    journey_id: str = ""
    application_id: str = ""
    partner: str = ""
    clock: str = ""
    person: str | None = None  # the stage's responsible person, as the application names them
    duty: Duty | None = None  # the stage's duty (the role whose mailbox is the fallback)
    due: datetime | None = None

    @property
    def touchpoint(self) -> str:
        return f"sla-{self.clock}-{self.kind}"[:64]


class EscalationNotifier(Protocol):
    async def notify(self, notice: EscalationNotice) -> str | None:
        """Deliver the notice; a string says what went wrong when it could not be delivered."""
        ...


class CabinetTransport(Protocol):
    """The partner cabinet's side: `PartnerCabinet` (HTTP) or `RecordingCabinet` (nothing leaves)."""

    name: str

    async def post(self, key: str, payload: dict[str, object]) -> str: ...


class PartnerCabinet:
    """The cabinet's webhook: JSON, signed like our incoming webhooks, one `Idempotency-Key` per
    notice. Raises `ProviderUnavailable`/`RateLimited` (retry) or `ApplicationError` non-retryable
    (`CabinetRefused`, a 4xx: the same request would be refused again)."""

    name = CABINET_PROVIDER

    def __init__(self, config: PartnerCabinetConfig, client: httpx.AsyncClient | None = None) -> None:
        self.config = config
        self.client = client or http_client(httpx.Timeout(config.timeout_seconds))

    async def post(self, key: str, payload: dict[str, object]) -> str:
        body = json.dumps(payload, ensure_ascii=False, sort_keys=True).encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self.config.secret.get_secret_value(), body),
            IDEMPOTENCY_HEADER: key,
        }
        try:
            response = await self.client.post(self.config.url, content=body, headers=headers)
        except httpx.TransportError as exc:
            raise transport_error(self.name, exc) from None
        status = response.status_code
        if status < 300:
            return key
        if status == 429:
            raise RateLimited(
                f"{self.name}: HTTP 429", provider=self.name, retry_after=retry_after_seconds(response)
            )
        if status == 408 or status >= 500:
            raise ProviderUnavailable(f"{self.name}: HTTP {status}", provider=self.name, maybe_accepted=True)
        raise ApplicationError(f"{self.name}: HTTP {status}", type="CabinetRefused", non_retryable=True)


class RecordingCabinet:
    """`channels=database`: the notice is only kept in the outbox (nothing leaves the machine)."""

    name = "recording-cabinet"

    async def post(self, key: str, payload: dict[str, object]) -> str:
        return key


class CabinetOutbox:
    """The cabinet webhook through the outbox: claim the row, post, settle it — once per key."""

    def __init__(self, db: Database, transport: CabinetTransport) -> None:
        self.db = db
        self.outbox = Outbox(db)
        self.transport = transport

    async def deliver(self, notice: EscalationNotice) -> str | None:
        key = f"{notice.journey_id}:{notice.touchpoint}:{CABINET_CHANNEL}"
        status, reason = await self._claim(key, notice)
        if status == "sent":
            return None
        if status == "failed":
            return reason
        payload: dict[str, object] = {
            "event_id": key,
            "kind": notice.kind,
            "partner": notice.partner,
            "application_id": notice.application_id,
            "clock": notice.clock,
            "due": notice.due.isoformat() if notice.due else None,
            "text": notice.text,
        }
        try:
            message_id = await self.transport.post(key, payload)
        except ApplicationError as refused:  # a 4xx: kept as failed, never sent again
            reason = f"{refused.type}: {refused.message}"
            await self.outbox.mark(key, "failed", reason=reason, provider=self.transport.name)
            log.warning(
                "sla %s of %s to the partner cabinet refused: %s", notice.kind, notice.journey_id, reason
            )
            return reason
        await self.outbox.mark(
            key, "sent", provider=self.transport.name, provider_message_id=message_id[:128]
        )
        log.info("sla %s of %s posted to the partner cabinet", notice.kind, notice.journey_id)
        return None

    async def _claim(self, key: str, notice: EscalationNotice) -> tuple[str, str | None]:
        now = datetime.now(UTC)
        values = {
            "dedup_key": key,
            "journey_id": notice.journey_id,
            "touchpoint": notice.touchpoint,
            "channel": CABINET_CHANNEL,
            "recipient": notice.partner[:254],
            "template": f"sla_{notice.kind}",
            "text": notice.text,
            "status": "pending",
            "reason": None,
            "created_at": now,
            "updated_at": now,
        }
        async with self.db.engine.begin() as connection:
            await connection.execute(
                insert_ignoring_conflict(self.db.dialect, OutboxRow, values, ["dedup_key"])
            )
            row = (
                await connection.execute(
                    select(OutboxRow.status, OutboxRow.reason).where(OutboxRow.dedup_key == key)
                )
            ).one()
        return str(row.status), row.reason


class ChannelNotifier:
    """The production notifier: e-mail, SMS and the cabinet webhook (see the module docstring)."""

    def __init__(self, contacts: SlaContacts, send: Send, cabinet: CabinetOutbox) -> None:
        self.contacts = contacts
        self.send = send
        self.cabinet = cabinet

    async def notify(self, notice: EscalationNotice) -> str | None:
        if notice.channel == PARTNER_CHANNEL:
            return await self.cabinet.deliver(notice)
        if notice.channel == URGENT_CHANNEL:
            return await self._message(notice, Channel.SMS, self.contacts.urgent_phone)
        return await self._message(notice, Channel.EMAIL, self.contacts.email_for(notice.person, notice.duty))

    async def _message(self, notice: EscalationNotice, channel: Channel, recipient: str | None) -> str | None:
        if recipient is None:
            what = (
                "no urgent_phone"
                if channel is Channel.SMS
                else "no e-mail for the person, role or duty operator"
            )
            log.error(
                "sla %s of %s not sent: %s in RENEWALS_SLA_CONTACTS", notice.kind, notice.journey_id, what
            )
            return f"NoDestination: {what}"
        request = SendRequest(
            journey_id=notice.journey_id,
            touchpoint=notice.touchpoint,
            channel=channel,
            template=f"sla_{notice.kind}",
            recipient=recipient,
            text=notice.text,
            subject=_subject(notice) if channel is Channel.EMAIL else None,
        )
        try:
            await self.send(request)
        except ApplicationError as error:
            if not error.non_retryable:
                raise  # a paused channel, a provider outage: the activity retries with the same key
            reason = f"{error.type}: {error.message}"
            log.warning(
                "sla %s of %s to %s not delivered: %s",
                notice.kind,
                notice.journey_id,
                mask_address(channel.value, recipient),
                error.type,
            )
            return reason
        return None


def _subject(notice: EscalationNotice) -> str:
    return f"SLA {notice.kind.replace('_', '-')}: application {notice.application_id} ({notice.partner})"
