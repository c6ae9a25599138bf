"""The renewal journey's activities: sends through the outbox, robot calls, operator tasks, portal checks.

Activities are methods of one class that holds its dependencies (database, channels), so tests and
the simulator swap the providers, not the code. Each is idempotent by its request's dedup key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import activity_methods
from renewals.activity_io import (
    AgentCardAnswer,
    AgentCardQuery,
    OperatorTaskReceipt,
    OperatorTaskRequest,
    OperatorTasksClosing,
    OptOutRecord,
    PortalQuery,
    PortalStatus,
    SendReceipt,
    SendRequest,
    StageRecord,
    SuppressionRecord,
)
from renewals.channels.base import Channels, Delivery, PermanentSendError, Provider
from renewals.channels.errors import ChannelPaused, TransientSendError
from renewals.channels.portal_http import current_agent_phone
from renewals.db.database import Database
from renewals.db.tables import JourneyRow, OperatorTaskRow
from renewals.db.upsert import insert_ignoring_conflict
from renewals.delivery import ChannelPauses, OptOuts
from renewals.journey_api import TERMINAL_STAGES, RobotOutcome
from renewals.models import Channel
from renewals.outbox import OPTED_OUT, Outbox, OutboxState, SettledSend
from renewals.privacy import mask_address, scrub_exception
from renewals.sendwindow import zone

log = logging.getLogger(__name__)


class JourneyActivities:
    def __init__(
        self,
        db: Database,
        channels: Channels,
        pause_minutes: float = 15.0,
        opt_outs_per_journey: bool = False,
    ) -> None:
        self.db = db
        self.channels = channels
        self.outbox = Outbox(db)
        self.opt_outs = OptOuts(db, per_journey=opt_outs_per_journey)
        self.pauses = ChannelPauses(db, timedelta(minutes=pause_minutes))

    def all(self) -> list[Callable[..., Any]]:
        return activity_methods(self)

    @activity.defn(name="send")
    async def send(self, request: SendRequest) -> SendReceipt:
        """Send one message, or place one robot call, exactly once, whatever the channel: claim the
        outbox row (the opt-out check in the same transaction), hand it to the channel's provider
        with its key, mark it sent.

        A row found pending (`resumed`: a retry, or a crashed worker's send) may already be at the
        provider, so: the request goes out flagged `resumed` (SMSC then asks its status query first,
        VK relies on `random_id`); and if the recipient opted out
        meanwhile, the provider is asked first (`find`) — what it has is recorded as sent, not
        suppressed; a provider that cannot tell (VK, e-mail, the robot) has it suppressed.
        """
        state = await self.outbox.claim(request, self.opt_outs.key(request.recipient, request.journey_id))
        if state.status == "sent" and state.provider and state.provider_message_id:
            return _receipt(state.provider, state.provider_message_id, _outcome_of(state.reason))
        _raise_if_settled(state)
        try:
            provider = self.channels.provider(request.channel)
            if state.opted_out is not None:
                delivery = await _find(provider, request, state)
                if delivery is None:
                    raise await self._suppress(request.dedup_key, state.opted_out)
            else:
                await self._check_paused(request.channel)
                _check_window(request)
                if state.resumed:
                    request = request.model_copy(update={"resumed": True})
                delivery = await provider.deliver(request, accepted_by=state.provider)
        except Exception as error:
            # A provider's error text may quote the address or the text it was sent: masked, with
            # every exception chained to it, before the outbox, Temporal or a log sees it.
            scrub_exception(error, request.recipient, request.text, request.subject)
            if isinstance(error, PermanentSendError):
                failed = await self._failed(request.dedup_key, request.channel, request.recipient, error)
                raise failed from error
            if isinstance(error, ChannelPaused):
                raise await self._pause(request.channel, error) from error
            if isinstance(error, TransientSendError):
                raise _retry(error) from error
            raise
        # A robot that answers at once (the recording one) has its outcome kept: a retry returns it too.
        reason = f"{_OUTCOME_PREFIX}{delivery.outcome.value}" if delivery.outcome is not None else None
        await self.outbox.mark(
            request.dedup_key,
            "sent",
            reason=reason,
            provider=delivery.provider,
            provider_message_id=delivery.message_id,
        )
        log.info("sent %s to %s", request.dedup_key, mask_address(request.channel.value, request.recipient))
        return _receipt(delivery.provider, delivery.message_id, delivery.outcome)

    async def _suppress(self, key: str, opted_out: str) -> SettledSend:
        await self.outbox.mark(key, "suppressed", reason=f"{OPTED_OUT}: {opted_out}")
        return SettledSend(opted_out, type=OPTED_OUT, status="suppressed")

    async def _failed(
        self, key: str, channel: Channel, recipient: str, error: PermanentSendError
    ) -> SettledSend:
        await self.outbox.mark(key, "failed", reason=f"{error.error_type}: {error.message}")
        log.warning(
            "send %s to %s failed permanently: %s",
            key,
            mask_address(channel.value, recipient),
            error.error_type,
        )
        return SettledSend(error.message, type=error.error_type, status="failed")

    async def _check_paused(self, channel: Channel) -> None:
        """A paused channel makes the send wait, not fail."""
        now = _clock()
        pause = await self.pauses.paused(channel, now)
        if pause is not None:
            remaining = ChannelPauses.until(pause) - now
            raise ApplicationError(
                f"channel {channel.value} paused: {pause.reason}",
                type="ChannelPaused",
                next_retry_delay=max(remaining, timedelta(seconds=1)),
            )

    async def _pause(self, channel: Channel, error: ChannelPaused) -> ApplicationError:
        now = _clock()
        until = await self.pauses.pause_channel(channel, f"{error.error_type}: {error.message}", now)
        return ApplicationError(error.message, type=error.error_type, next_retry_delay=until - now)

    @activity.defn(name="record_opt_out")
    async def record_opt_out(self, record: OptOutRecord) -> None:
        await self.opt_outs.add(record.addresses, record.reason, record.journey_id, source="journey")

    @activity.defn(name="record_suppressed")
    async def record_suppressed(self, record: SuppressionRecord) -> None:
        await self.outbox.record(record)

    @activity.defn(name="open_operator_task")
    async def open_operator_task(self, request: OperatorTaskRequest) -> OperatorTaskReceipt:
        """Open the task (once per dedup key). Refused, opening nothing, when the phone the operator
        would call is on the do-not-contact list (`OptedOut`: the journey ends as opted out) or the
        journey has already ended (`JourneyEnded`: an attempt that ran late, after the journey's end)."""
        if request.phone and (listed := await self.opt_outs.reason(request.phone, request.journey_id)):
            raise ApplicationError(listed, type=OPTED_OUT, non_retryable=True)
        async with self.db.session() as session:
            ended = await session.get(JourneyRow, request.journey_id)
        if ended is not None and ended.stage in TERMINAL_STAGES:
            raise ApplicationError(
                f"journey {request.journey_id} has ended ({ended.stage}): no operator task",
                type="JourneyEnded",
                non_retryable=True,
            )
        values = {
            "dedup_key": request.dedup_key,
            "journey_id": request.journey_id,
            "policy_number": request.policy_number,
            "centre_id": request.centre_id,
            "reason": request.reason,
            "text": request.text,
            "status": "open",
            "created_at": datetime.now(UTC),
        }
        async with self.db.session() as session, session.begin():
            await session.execute(
                insert_ignoring_conflict(self.db.dialect, OperatorTaskRow, values, ["dedup_key"])
            )
            task_id = (
                await session.execute(
                    select(OperatorTaskRow.id).where(OperatorTaskRow.dedup_key == request.dedup_key)
                )
            ).scalar_one()
        return OperatorTaskReceipt(task_id=str(task_id))

    @activity.defn(name="close_operator_tasks")
    async def close_operator_tasks(self, closing: OperatorTasksClosing) -> int:
        """The journey ended: every task of it still open or claimed closes with the journey's
        outcome as the reason (an operator must not call a client who has paid). Idempotent."""
        async with self.db.session() as session, session.begin():
            closed = await session.execute(
                update(OperatorTaskRow)
                .where(OperatorTaskRow.journey_id == closing.journey_id, OperatorTaskRow.status != "closed")
                .values(
                    status="closed",
                    closed_at=datetime.now(UTC),
                    closed_reason=f"the journey ended: {closing.stage} ({closing.reason})",
                )
            )
        count = int(getattr(closed, "rowcount", 0) or 0)
        if count:
            log.info("closed %d operator task(s) of %s: %s", count, closing.journey_id, closing.stage)
        return count

    @activity.defn(name="check_portal")
    async def check_portal(self, query: PortalQuery) -> PortalStatus:
        return await self.channels.portal.renewal_status(query)

    @activity.defn(name="current_agent_card")
    async def current_agent_card(self, query: AgentCardQuery) -> AgentCardAnswer:
        """The agent's phone as their card in Альфа-Полис shows it now (agents keep it current
        there): read before a base SMS quotes it. Read-only, so a retry is harmless."""
        return await current_agent_phone(self.channels.portal, query.agent_id)

    @activity.defn(name="record_stage")
    async def record_stage(self, record: StageRecord) -> None:
        async with self.db.session() as session, session.begin():
            await session.merge(
                JourneyRow(
                    id=record.journey_id,
                    policy_number=record.policy_number,
                    expires_on=record.expires_on,
                    agent_id=record.agent_id,
                    product=record.product,
                    stage=record.stage,
                    updated_at=datetime.now(UTC),
                )
            )


_OUTCOME_PREFIX = "outcome: "


def _outcome_of(reason: str | None) -> RobotOutcome | None:
    if reason and reason.startswith(_OUTCOME_PREFIX):
        return RobotOutcome(reason.removeprefix(_OUTCOME_PREFIX))
    return None


def _raise_if_settled(state: OutboxState) -> None:
    """A row that already failed or was suppressed answers every retry the same way; one this claim
    created suppressed (the address had opted out) is settled by this attempt."""
    if state.status in ("failed", "suppressed"):
        error_type, _, message = (state.reason or "SendFailed: ").partition(": ")
        if state.new:
            raise SettledSend(message, type=error_type, status=state.status)
        raise ApplicationError(message, type=error_type, non_retryable=True)


def _retry(error: TransientSendError) -> ApplicationError:
    delay = timedelta(seconds=error.retry_after) if error.retry_after else None
    return ApplicationError(error.message, type=error.error_type, next_retry_delay=delay)


async def _find(provider: Provider, request: SendRequest, state: OutboxState) -> Delivery | None:
    """The delivery if the provider proves it has the message; None if it has not or cannot tell."""
    try:
        return await provider.find(request, accepted_by=state.provider)
    except PermanentSendError:  # e.g. a number it can't even look up: it has nothing
        return None


def _receipt(provider: str, message_id: str, outcome: RobotOutcome | None) -> SendReceipt:
    return SendReceipt(provider=provider, provider_message_id=message_id, outcome=outcome)


def _clock() -> datetime:
    """Temporal's time for this attempt: the wall clock in production, the skipped clock in tests."""
    return activity.info().started_time


def _check_window(request: SendRequest) -> None:
    """A send whose retry comes due outside the client's window waits for its next opening:
    deferred, never sent at night. A robot call past today's calling hours is not made at all."""
    now = _clock()
    if request.not_after is not None and now >= request.not_after:
        raise ApplicationError(
            "today's calling hours are over", type="CallingWindowClosed", non_retryable=True
        )
    if request.window is None or request.timezone is None:
        return
    opening = request.window.next_open_moment(now, zone(request.timezone))
    if opening > now:
        raise ApplicationError(
            f"outside the send window until {opening.isoformat()}",
            type="OutsideSendWindow",
            next_retry_delay=opening - now,
        )
