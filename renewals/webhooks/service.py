"""From a verified callback to a journey signal, exactly once per `(source, event_id)`.

The receipt row is claimed before the signal and marked processed after it: a repeated callback finds
a processed row and changes nothing; one that failed half-way is processed again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import delete, select, update
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from renewals.db.database import Database
from renewals.db.tables import OutboxRow
from renewals.db.tables_ops import WebhookEventRow
from renewals.db.upsert import insert_ignoring_conflict
from renewals.intake.store import current_term
from renewals.journey import EventType, JourneyEvent, RobotOutcomeReport
from renewals.models import journey_id
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
    signal: str | None  # "event" or "robot_outcome", or None for a fact without a signal
    payload: Any = None


def action_for(source: str, callback: Callback) -> Action:
    if isinstance(callback, SmsCallback):
        if callback.type != "reply":
            return Action(callback.type, None)
        if (callback.text or "").strip().upper() in STOP_WORDS:
            return Action("opt_out", "event", JourneyEvent(type=EventType.OPT_OUT, source=source))
        return Action("replied", "event", JourneyEvent(type=EventType.SMS_REPLIED, source=source))
    if isinstance(callback, EmailCallback):
        if callback.type == "opened":
            return Action("opened", "event", JourneyEvent(type=EventType.EMAIL_OPENED, source=source))
        return Action(callback.type, None)
    if isinstance(callback, VkCallback):
        if callback.type in ("read", "reply"):
            return Action(callback.type, "event", JourneyEvent(type=EventType.VK_READ, source=source))
        return Action(callback.type, None)
    if isinstance(callback, RobotCallback):
        report = RobotOutcomeReport(outcome=callback.outcome, task_id=callback.task_id)
        return Action(callback.outcome.value, "robot_outcome", report)
    if isinstance(callback, PortalCallback):
        return Action(callback.type, "event", JourneyEvent(type=EventType(callback.type), source=source))
    raise TypeError(f"no mapping for {type(callback).__name__}")


CHANNEL_OF_SOURCE = {"sms": "sms", "email": "email", "vk": "vk", "robot": "robot_call", "portal": "portal"}


class WebhookService:
    def __init__(self, db: Database, client: Client) -> None:
        self.db = db
        self.client = client

    async def resolve(self, source: str, callback: Callback, today: date) -> Target:
        channel = CHANNEL_OF_SOURCE[source]
        if callback.message_id:
            async with self.db.session() as session:
                row = (
                    await session.execute(
                        select(OutboxRow.journey_id, OutboxRow.channel, OutboxRow.touchpoint).where(
                            OutboxRow.dedup_key == callback.message_id
                        )
                    )
                ).one_or_none()
            if row is None:
                raise UnknownJourney(f"unknown message {callback.message_id!r}")
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
        action = action_for(source, callback)
        if not await self._claim(source, callback.event_id, target, action):
            return WebhookResult(status="duplicate", journey_id=target.journey_id, signal=action.signal)
        status: Any = "accepted"
        if action.signal is not None:
            try:
                await self.client.get_workflow_handle(target.journey_id).signal(action.signal, action.payload)
            except RPCError as error:
                if error.status is not RPCStatusCode.NOT_FOUND:
                    await self._forget(source, callback.event_id)
                    raise
                if not await self._journey_exists(target.journey_id):
                    await self._forget(source, callback.event_id)
                    raise UnknownJourney(f"no journey {target.journey_id}") from error
                status = "journey_finished"
        await self._done(source, callback.event_id, status)
        return WebhookResult(status=status, journey_id=target.journey_id, signal=action.signal)

    async def _journey_exists(self, workflow_id: str) -> bool:
        try:
            await self.client.get_workflow_handle(workflow_id).describe()
        except RPCError as error:
            if error.status is RPCStatusCode.NOT_FOUND:
                return False
            raise
        return True

    async def _claim(self, source: str, event_id: str, target: Target, action: Action) -> bool:
        """True if this callback is new (or an earlier attempt did not finish)."""
        values = {
            "source": source,
            "event_id": event_id,
            "journey_id": target.journey_id,
            "channel": target.channel,
            "touchpoint": target.touchpoint,
            "kind": action.kind,
            "signal": action.signal,
            "processed": False,
            "received_at": datetime.now(UTC),
        }
        async with self.db.session() as session, session.begin():
            await session.execute(
                insert_ignoring_conflict(self.db.dialect, WebhookEventRow, values, ["source", "event_id"])
            )
            processed = (
                await session.execute(
                    select(WebhookEventRow.processed).where(
                        WebhookEventRow.source == source, WebhookEventRow.event_id == event_id
                    )
                )
            ).scalar_one()
        return not processed

    async def _done(self, source: str, event_id: str, result: str) -> None:
        async with self.db.session() as session, session.begin():
            await session.execute(
                update(WebhookEventRow)
                .where(WebhookEventRow.source == source, WebhookEventRow.event_id == event_id)
                .values(processed=True, result=result)
            )

    async def _forget(self, source: str, event_id: str) -> None:
        async with self.db.session() as session, session.begin():
            await session.execute(
                delete(WebhookEventRow).where(
                    WebhookEventRow.source == source, WebhookEventRow.event_id == event_id
                )
            )
