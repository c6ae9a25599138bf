"""From a verified callback to a journey signal, exactly once per `(source, event_id)`.

The order matters. First the callback must name a journey Temporal knows (the outbox or the policy
table names it, `describe` confirms it): otherwise the sender gets a 404 and nothing is stored, so a
retry after the import succeeds. Then the receipt row is *claimed* with one conditional UPDATE, so of
two copies of a callback in flight only one signals. A failed signal releases the claim (the provider
retries); a claim whose holder died before finishing can be taken over after `CLAIM_LEASE`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, and_, delete, or_, select, update
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from renewals.db.database import Database
from renewals.db.tables import OutboxRow
from renewals.db.tables_ops import WebhookEventRow
from renewals.db.upsert import insert_ignoring_conflict
from renewals.intake.portfolio_store import current_term
from renewals.journey_api import (
    EVENT_SIGNAL,
    ROBOT_OUTCOME_SIGNAL,
    EventType,
    JourneyEvent,
    RobotOutcomeReport,
)
from renewals.models import journey_id
from renewals.temporal.journeys import execution_status, send_event, send_robot_outcome
from renewals.webhooks.payloads import (
    Callback,
    EmailCallback,
    PortalCallback,
    RobotCallback,
    SmsCallback,
    VkCallback,
    WebhookResult,
)

log = logging.getLogger(__name__)
STOP_WORDS = frozenset({"STOP", "СТОП", "STOP.", "СТОП."})
CLAIM_LEASE = timedelta(minutes=2)  # longer than any signal takes; shorter than a provider's retry
CHANNEL_OF_SOURCE = {"sms": "sms", "email": "email", "vk": "vk", "robot": "robot_call", "portal": "portal"}
DELIVERY_EVENTS = {
    "delivered": EventType.MESSAGE_DELIVERED,
    "undelivered": EventType.MESSAGE_UNDELIVERED,
    "bounced": EventType.MESSAGE_UNDELIVERED,
}


class UnknownJourney(LookupError):
    """The callback names no policy, message or journey we know: the sender gets a 404."""


@dataclass(frozen=True)
class Target:
    journey_id: str
    channel: str | None
    touchpoint: str | None


@dataclass(frozen=True)
class Action:
    kind: str  # the fact stored for the funnel: delivered, opened, read, replied, opt_out, agreed…
    payload: JourneyEvent | RobotOutcomeReport

    @property
    def signal(self) -> str:
        """The journey signal it goes as ("event" or "robot_outcome"): stored, and told the sender."""
        return ROBOT_OUTCOME_SIGNAL if isinstance(self.payload, RobotOutcomeReport) else EVENT_SIGNAL

    async def send(self, client: Client, journey_id: str) -> None:
        if isinstance(self.payload, RobotOutcomeReport):
            await send_robot_outcome(client, journey_id, self.payload)
        else:
            await send_event(client, journey_id, self.payload)


def _event(kind: str, type_: EventType, source: str) -> Action:
    return Action(kind, JourneyEvent(type=type_, source=source))


def action_for(source: str, callback: Callback, target: Target) -> Action:
    """What the callback tells the journey. Delivery reports name the message they are about
    (`sms:d-30-sms`) so the journey's events say which send was delivered or not."""
    kind = getattr(callback, "type", None)
    if kind in DELIVERY_EVENTS:
        message = ":".join(part for part in (target.channel or source, target.touchpoint) if part)
        return _event(kind, DELIVERY_EVENTS[kind], message)
    if isinstance(callback, SmsCallback):
        if (callback.text or "").strip().upper() in STOP_WORDS:
            return _event("opt_out", EventType.OPT_OUT, source)
        return _event("replied", EventType.SMS_REPLIED, source)
    if isinstance(callback, EmailCallback):
        return _event("opened", EventType.EMAIL_OPENED, source)
    if isinstance(callback, VkCallback):
        return _event(callback.type, EventType.VK_READ, source)
    if isinstance(callback, RobotCallback):
        report = RobotOutcomeReport(outcome=callback.outcome, task_id=callback.task_id)
        return Action(callback.outcome.value, report)
    if isinstance(callback, PortalCallback):
        return _event(callback.type, EventType(callback.type), source)
    raise TypeError(f"no mapping for {type(callback).__name__}")


class WebhookService:
    def __init__(self, db: Database, client: Client) -> None:
        self.db = db
        self.client = client

    async def resolve(self, source: str, callback: Callback, today: date) -> Target:
        """The journey a callback is about. A `message_id` is our outbox key or the id the provider
        gave the message (the adapters hand providers a hash of the key, never the key: SMSC `id`,
        e-mail `Message-ID`, VK's message id — the outbox keeps it as `provider_message_id`)."""
        channel = CHANNEL_OF_SOURCE[source]
        if callback.message_id:
            mid = callback.message_id.strip()
            by_provider = and_(
                OutboxRow.channel == channel,
                OutboxRow.provider_message_id.in_((mid, f"<{mid.strip('<>')}>")),  # Message-ID ± <>
            )
            async with self.db.session() as session:
                row = (
                    await session.execute(
                        select(OutboxRow.journey_id, OutboxRow.channel, OutboxRow.touchpoint)
                        .where(or_(OutboxRow.dedup_key == mid, by_provider))
                        .order_by(OutboxRow.updated_at.desc())
                        .limit(1)
                    )
                ).one_or_none()
            if row is None:
                raise UnknownJourney(f"unknown message {mid!r}")
            return Target(row.journey_id, row.channel, row.touchpoint)
        if callback.journey_id:
            return Target(callback.journey_id, channel, None)
        number = callback.policy_number or ""
        term = callback.expires_on or await current_term(self.db, number, today)
        if term is None:
            raise UnknownJourney(f"unknown policy {number!r}")
        return Target(journey_id(number, term), channel, None)

    async def handle(self, source: str, callback: Callback) -> WebhookResult:
        target = await self.resolve(source, callback, datetime.now(UTC).date())
        running = await self._running(target.journey_id)
        action = action_for(source, callback, target)
        if not await self._claim(source, callback.event_id, target, action):
            return WebhookResult(status="duplicate", journey_id=target.journey_id, signal=action.signal)
        status: Any = "accepted" if running else "journey_finished"
        if running:
            try:
                await action.send(self.client, target.journey_id)
            except RPCError as error:
                if error.status is not RPCStatusCode.NOT_FOUND:
                    await self._forget(source, callback.event_id)
                    raise
                status = "journey_finished"  # it ended between describe and signal
        await self._done(source, callback.event_id, status)
        return WebhookResult(status=status, journey_id=target.journey_id, signal=action.signal)

    async def _running(self, workflow_id: str) -> bool:
        """True if the journey runs, False if it has finished; UnknownJourney if Temporal has none."""
        status = await execution_status(self.client, workflow_id)
        if status is None:
            raise UnknownJourney(f"no journey {workflow_id}")
        return status is WorkflowExecutionStatus.RUNNING

    async def _claim(self, source: str, event_id: str, target: Target, action: Action) -> bool:
        """True for exactly one caller per callback: the row is inserted if new, then taken with a
        conditional UPDATE whose row count says who won (a stale, unfinished claim may be taken over)."""
        now = datetime.now(UTC)
        values = {
            "source": source,
            "event_id": event_id,
            "journey_id": target.journey_id,
            "channel": target.channel,
            "touchpoint": target.touchpoint,
            "kind": action.kind,
            "signal": action.signal,
            "processed": False,
            "received_at": now,
        }
        row = and_(WebhookEventRow.source == source, WebhookEventRow.event_id == event_id)
        claimable = or_(
            WebhookEventRow.processed.is_(False),
            and_(WebhookEventRow.result.is_(None), WebhookEventRow.received_at < now - CLAIM_LEASE),
        )
        async with self.db.session() as session, session.begin():
            await session.execute(
                insert_ignoring_conflict(self.db.dialect, WebhookEventRow, values, ["source", "event_id"])
            )
            claimed = cast(
                "CursorResult[Any]",
                await session.execute(
                    update(WebhookEventRow).where(row, claimable).values(processed=True, received_at=now)
                ),
            )
        return claimed.rowcount == 1

    async def _done(self, source: str, event_id: str, result: str) -> None:
        async with self.db.session() as session, session.begin():
            await session.execute(
                update(WebhookEventRow)
                .where(WebhookEventRow.source == source, WebhookEventRow.event_id == event_id)
                .values(result=result)
            )

    async def _forget(self, source: str, event_id: str) -> None:
        """Release a claim whose signal failed, so the provider's retry is processed."""
        async with self.db.session() as session, session.begin():
            await session.execute(
                delete(WebhookEventRow).where(
                    WebhookEventRow.source == source, WebhookEventRow.event_id == event_id
                )
            )
