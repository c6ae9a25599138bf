"""From a verified callback to a journey signal, exactly once per `(source, event_id)`.

The order matters. First the callback must name a journey Temporal knows (the outbox or the policy
table names it, `describe` confirms it): otherwise the sender gets a 404 and nothing is stored, so a
retry after the import succeeds. Then the receipt row is *claimed* with one conditional UPDATE, so of
two copies of a callback in flight only one signals; a row has three states: new (`processed` false),
claimed (`processed`, no `result`) and done (`result` set). A copy that finds the row claimed waits up
to `CLAIM_WAIT` for it to be done (then it is a `duplicate`); if it is still unfinished it answers
`ClaimInFlight` (503: the provider retries). A failed signal releases the claim. A claim whose holder
died — between the claim and the signal, or between the signal and `done` — is taken over by a retry
after `CLAIM_LEASE`, and the work is finished then. The signal carries a request id derived from
`(source, event_id)`, and Temporal keeps one signal per request id and run: however many attempts
signal, the journey receives the event exactly once.

An opt-out (a STOP reply, the robot's do-not-contact) about a journey that has ended — or is closing,
its stage already final — is no longer the journey's to act on: the service lists the client's
addresses itself (`renewals.optout_register.journey_addresses`), so it still reaches the
do-not-contact list every journey checks at send time.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, and_, delete, or_, select, update
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from renewals.db.database import Database
from renewals.db.tables import OutboxRow
from renewals.db.tables_ops import WebhookEventRow
from renewals.db.upsert import insert_ignoring_conflict
from renewals.delivery import OptOuts, masked_address
from renewals.intake.portfolio_store import current_term
from renewals.journey_api import (
    EVENT_SIGNAL,
    ROBOT_OUTCOME_SIGNAL,
    WORKFLOW_TYPE,
    EventType,
    JourneyEvent,
    RobotOutcome,
    RobotOutcomeReport,
)
from renewals.models import journey_id
from renewals.optout_register import journey_addresses
from renewals.sla.models import SLA_ID_PREFIX
from renewals.temporal.journeys import JourneyState, journey_state, send_event, send_robot_outcome
from renewals.webhooks.payloads import (
    Callback,
    EmailCallback,
    PortalCallback,
    RobotCallback,
    SmsCallback,
    VkCallback,
    WebhookResult,
    shown,
)

log = logging.getLogger(__name__)
STOP_WORDS = frozenset({"STOP", "СТОП", "STOP.", "СТОП."})
CLAIM_LEASE = timedelta(minutes=2)  # longer than any signal takes; shorter than a provider's retry
CLAIM_WAIT = timedelta(seconds=3)  # how long a copy waits for the claim's holder before a 503
SIGNAL_IDS = uuid.UUID("0b5e7c1e-7f2a-4c55-9d0e-6a1f3c2b9e41")  # namespace of the signals' request ids
CHANNEL_OF_SOURCE = {"sms": "sms", "email": "email", "vk": "vk", "robot": "robot_call", "portal": "portal"}
DELIVERY_EVENTS = {
    "delivered": EventType.MESSAGE_DELIVERED,
    "undelivered": EventType.MESSAGE_UNDELIVERED,
    "bounced": EventType.MESSAGE_UNDELIVERED,
}


class UnknownJourney(LookupError):
    """The callback names no policy, message or journey we know: the sender gets a 404."""


class ClaimInFlight(RuntimeError):
    """Another copy of the callback holds an unfinished claim: the sender gets a 503 and retries."""


def request_id(source: str, event_id: str) -> str:
    """The signal's request id: the same for every attempt at one callback."""
    return str(uuid.uuid5(SIGNAL_IDS, f"{source}\n{event_id}"))


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

    @property
    def opts_out(self) -> bool:
        """The client asked not to be contacted (STOP, the robot's do-not-contact)."""
        if isinstance(self.payload, RobotOutcomeReport):
            return self.payload.outcome is RobotOutcome.DO_NOT_CONTACT
        return self.payload.type is EventType.OPT_OUT

    async def send(self, client: Client, journey_id: str, request_id: str | None = None) -> None:
        if isinstance(self.payload, RobotOutcomeReport):
            await send_robot_outcome(client, journey_id, self.payload, request_id)
        else:
            await send_event(client, journey_id, self.payload, request_id)


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
    if isinstance(callback, VkCallback) and callback.type == "denied":
        return _event("vk_denied", EventType.VK_DENIED, source)
    if isinstance(callback, VkCallback):
        return _event(callback.type, EventType.VK_READ, source)
    if isinstance(callback, RobotCallback):
        report = RobotOutcomeReport(outcome=callback.outcome, task_id=callback.task_id)
        return Action(callback.outcome.value, report)
    if isinstance(callback, PortalCallback):
        return _event(callback.type, EventType(callback.type), source)
    raise TypeError(f"no mapping for {type(callback).__name__}")


class WebhookService:
    def __init__(self, db: Database, client: Client, opt_outs: OptOuts | None = None) -> None:
        self.db = db
        self.client = client
        self.opt_outs = opt_outs or OptOuts(db)

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
                raise UnknownJourney(f"unknown message {shown(mid)!r}")
            return Target(row.journey_id, row.channel, row.touchpoint)
        if callback.journey_id:
            return Target(callback.journey_id, channel, None)
        number = callback.policy_number or ""
        term = callback.expires_on or await current_term(self.db, number, today)
        if term is None:
            raise UnknownJourney(f"unknown policy {shown(number)!r}")
        return Target(journey_id(number, term), channel, None)

    async def handle(self, source: str, callback: Callback) -> WebhookResult:
        target = await self.resolve(source, callback, datetime.now(UTC).date())
        if target.journey_id.startswith(SLA_ID_PREFIX):
            # a partner-SLA notice (a staff e-mail, the urgent line's SMS) shares the outbox: its
            # delivery report has no journey to tell, and a 404 would only make the provider retry
            log.info(
                "%s callback %s for SLA notice %s: ignored",
                source,
                shown(callback.event_id),
                target.journey_id,
            )
            return WebhookResult(status="ignored", journey_id=target.journey_id)
        state = await self._state(target.journey_id)
        running = state.running
        action = action_for(source, callback, target)
        duplicate = WebhookResult(status="duplicate", journey_id=target.journey_id, signal=action.signal)
        if not await self._claim(source, callback.event_id, target, action):
            if await self._wait_done(source, callback.event_id):
                return duplicate
            raise ClaimInFlight(f"{source} callback {shown(callback.event_id)} is still being processed")
        status: Any = "accepted" if running else "journey_finished"
        if action.opts_out and state.ended:
            try:
                await self._list_opt_out(source, target.journey_id, action.kind)
            except Exception:
                await self._forget(source, callback.event_id)
                raise
        if running:
            try:
                await action.send(self.client, target.journey_id, request_id(source, callback.event_id))
            except RPCError as error:
                if error.status is not RPCStatusCode.NOT_FOUND:
                    await self._forget(source, callback.event_id)
                    raise
                status = "journey_finished"  # it ended between describe and signal
            except Exception:
                await self._forget(source, callback.event_id)
                raise
        await self._done(source, callback.event_id, status)
        return WebhookResult(status=status, journey_id=target.journey_id, signal=action.signal)

    async def _state(self, workflow_id: str) -> JourneyState:
        """The journey's state (running or not, its stage); UnknownJourney if Temporal has none — or
        if the id names a workflow that is no renewal journey (an SLA application, an intake run)."""
        found = await journey_state(self.client, workflow_id)
        if found is None or found.workflow_type != WORKFLOW_TYPE:
            raise UnknownJourney(f"no journey {shown(workflow_id)}")
        return found

    async def _list_opt_out(self, source: str, journey: str, kind: str) -> None:
        """An opt-out the ended journey can no longer act on: the service lists the client itself."""
        addresses = await journey_addresses(self.db, journey)
        if not addresses:
            log.warning("%s opt-out for ended journey %s: no address of its client is known", source, journey)
            return
        added = await self.opt_outs.add(
            addresses, f"{kind} ({source}) after the journey ended", journey, source=f"webhook:{source}"
        )
        masked = ", ".join(masked_address(a) for a in addresses)
        log.info("%s opt-out for ended journey %s: listed %d new of %s", source, journey, len(added), masked)

    async def _wait_done(self, source: str, event_id: str) -> bool:
        """True once the callback's row is done; False if it is still unfinished after `CLAIM_WAIT`."""
        row = and_(WebhookEventRow.source == source, WebhookEventRow.event_id == event_id)
        deadline = asyncio.get_running_loop().time() + CLAIM_WAIT.total_seconds()
        while True:
            async with self.db.session() as session:
                result = (await session.execute(select(WebhookEventRow.result).where(row))).first()
            if result is None or result[0] is not None:
                return result is not None  # done (or released: then the sender retries)
            if asyncio.get_running_loop().time() >= deadline:
                return False
            await asyncio.sleep(0.05)

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
