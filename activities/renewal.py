"""The renewal journey's activities: sends through the outbox, robot calls, operator tasks, portal checks.

Activities are methods of one class that holds its dependencies (database, channels), so tests and
the simulator swap the providers, not the code. Each is idempotent by its request's dedup key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from renewals.activity_io import (
    OperatorTaskReceipt,
    OperatorTaskRequest,
    OptOutRecord,
    PortalQuery,
    PortalStatus,
    RobotCallRequest,
    RobotCallResult,
    SendReceipt,
    SendRequest,
    StageRecord,
    SuppressionRecord,
)
from renewals.channels.base import Channels, MessageProvider, PermanentSendError
from renewals.channels.errors import ChannelPaused, TransientSendError
from renewals.channels.failover import FailoverProvider, Reconcilable
from renewals.db.database import Database
from renewals.db.tables import JourneyRow, OperatorTaskRow
from renewals.db.upsert import insert_ignoring_conflict
from renewals.delivery import ChannelPauses, OptOuts
from renewals.journey_api import RobotOutcome
from renewals.models import Channel
from renewals.outbox import OPTED_OUT, Outbox, OutboxState
from renewals.privacy import mask_address
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
        return [
            self.send_message,
            self.record_suppressed,
            self.record_opt_out,
            self.place_robot_call,
            self.open_operator_task,
            self.check_portal,
            self.record_stage,
        ]

    @activity.defn(name="send_message")
    async def send_message(self, request: SendRequest) -> SendReceipt:
        """Send one message exactly once: claim the outbox row (the opt-out check in the same
        transaction), send with its key, mark it sent.

        A row found pending (`resumed`: a retry, or a crashed worker's send) may already be at the
        provider, so: the request goes out flagged `resumed` (SMSC then asks its status query first,
        VK skips the permission check and relies on `random_id`); and if the recipient opted out
        meanwhile, the provider is asked first — a message it has is recorded as sent, not suppressed.
        """
        state = await self.outbox.claim(request, self.opt_outs.key(request.recipient, request.journey_id))
        if state.status == "sent" and state.provider and state.provider_message_id:
            return SendReceipt(provider=state.provider, provider_message_id=state.provider_message_id)
        _raise_if_settled(state)
        try:
            provider = self.channels.for_channel(request.channel)
            if state.opted_out is not None:
                found = await _find_delivered(provider, request, state)
                if found is None:
                    raise await self._suppress(request.dedup_key, state.opted_out)
                provider_name, message_id = found
            else:
                await self._check_paused(request.channel)
                _check_window(request)
                if state.resumed:
                    request = request.model_copy(update={"resumed": True})
                if isinstance(provider, FailoverProvider):  # it knows which of its providers took it
                    delivery = await provider.deliver(request, accepted_by=state.provider)
                    provider_name, message_id = delivery.provider, delivery.message_id
                else:
                    provider_name, message_id = provider.name, await provider.send(request)
        except PermanentSendError as error:
            raise await self._failed(request.dedup_key, request.channel, request.recipient, error) from error
        except ChannelPaused as error:
            raise await self._pause(request.channel, error) from error
        except TransientSendError as error:
            raise _retry(error) from error
        await self.outbox.mark(
            request.dedup_key, "sent", provider=provider_name, provider_message_id=message_id
        )
        log.info("sent %s to %s", request.dedup_key, mask_address(request.channel.value, request.recipient))
        return SendReceipt(provider=provider_name, provider_message_id=message_id)

    async def _suppress(self, key: str, opted_out: str) -> ApplicationError:
        await self.outbox.mark(key, "suppressed", reason=f"{OPTED_OUT}: {opted_out}")
        return ApplicationError(opted_out, type=OPTED_OUT, non_retryable=True)

    async def _failed(
        self, key: str, channel: Channel, recipient: str, error: PermanentSendError
    ) -> ApplicationError:
        await self.outbox.mark(key, "failed", reason=f"{error.error_type}: {error.message}")
        log.warning(
            "send %s to %s failed permanently: %s",
            key,
            mask_address(channel.value, recipient),
            error.error_type,
        )
        return ApplicationError(error.message, type=error.error_type, non_retryable=True)

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
        await self.opt_outs.add(record.addresses, record.reason, record.journey_id)

    @activity.defn(name="record_suppressed")
    async def record_suppressed(self, record: SuppressionRecord) -> None:
        await self.outbox.record(record)

    @activity.defn(name="place_robot_call")
    async def place_robot_call(self, request: RobotCallRequest) -> RobotCallResult:
        """Queue one robot call through the outbox, like a message: the row is claimed first, the
        provider gets the row's key as `client_task_id` (a retry after a crash queues nothing new:
        the provider answers the first task), and the row is marked sent with the provider's task id.
        The robot has no status query, so a resumed row whose phone opted out is suppressed."""
        state = await self.outbox.claim(request, self.opt_outs.key(request.phone, request.journey_id))
        if state.status == "sent" and state.provider_message_id:
            return RobotCallResult(task_id=state.provider_message_id, outcome=_outcome_of(state.reason))
        _raise_if_settled(state)
        if state.opted_out is not None:
            raise await self._suppress(request.dedup_key, state.opted_out)
        await self._check_paused(Channel.ROBOT_CALL)
        if request.not_after is not None and _clock() >= request.not_after:
            raise ApplicationError(
                "today's calling hours are over", type="CallingWindowClosed", non_retryable=True
            )
        robot = self.channels.robot
        try:
            result = await robot.place_call(request)
        except PermanentSendError as error:
            raise await self._failed(request.dedup_key, Channel.ROBOT_CALL, request.phone, error) from error
        except ChannelPaused as error:
            raise await self._pause(Channel.ROBOT_CALL, error) from error
        except TransientSendError as error:
            raise _retry(error) from error
        # A provider that answers at once (the sandbox) has its outcome kept, so a retry returns it too.
        reason = f"{_OUTCOME_PREFIX}{result.outcome.value}" if result.outcome is not None else None
        await self.outbox.mark(
            request.dedup_key, "sent", reason=reason, provider=robot.name, provider_message_id=result.task_id
        )
        return result

    @activity.defn(name="open_operator_task")
    async def open_operator_task(self, request: OperatorTaskRequest) -> OperatorTaskReceipt:
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

    @activity.defn(name="check_portal")
    async def check_portal(self, query: PortalQuery) -> PortalStatus:
        return await self.channels.portal.renewal_status(query)

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
    """A row that already failed or was suppressed answers every retry the same way."""
    if state.status in ("failed", "suppressed"):
        error_type, _, message = (state.reason or "SendFailed: ").partition(": ")
        raise ApplicationError(message, type=error_type, non_retryable=True)


def _retry(error: TransientSendError) -> ApplicationError:
    delay = timedelta(seconds=error.retry_after) if error.retry_after else None
    return ApplicationError(error.message, type=error.error_type, next_retry_delay=delay)


async def _find_delivered(
    provider: MessageProvider, request: SendRequest, state: OutboxState
) -> tuple[str, str] | None:
    """(provider, message id) if the provider proves it has the message; None if it has not or
    cannot tell (no status query: VK, e-mail)."""
    try:
        if isinstance(provider, FailoverProvider):
            delivery = await provider.find(request, accepted_by=state.provider)
            return (delivery.provider, delivery.message_id) if delivery else None
        if isinstance(provider, Reconcilable):
            message_id = await provider.lookup(request)
            return (provider.name, message_id) if message_id else None
    except PermanentSendError:  # e.g. a number it can't even look up: it has nothing
        return None
    return None


def _clock() -> datetime:
    """Temporal's time for this attempt: the wall clock in production, the skipped clock in tests."""
    return activity.info().started_time


def _check_window(request: SendRequest) -> None:
    """A send whose retry comes due outside the client's window waits for its next opening:
    deferred, never sent at night."""
    if request.window is None or request.timezone is None:
        return
    now = _clock()
    opening = request.window.next_open_moment(now, zone(request.timezone))
    if opening > now:
        raise ApplicationError(
            f"outside the send window until {opening.isoformat()}",
            type="OutsideSendWindow",
            next_retry_delay=opening - now,
        )
