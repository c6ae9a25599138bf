"""The renewal journey's activities: sends through the outbox, robot calls, operator tasks, portal checks.

Activities are methods of one class that holds its dependencies (database, channels), so tests and
the simulator swap the providers, not the code. Each is idempotent by its request's dedup key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from renewals.channels.base import Channels, PermanentSendError
from renewals.contracts import (
    OperatorTaskReceipt,
    OperatorTaskRequest,
    PortalQuery,
    PortalStatus,
    RobotCallRequest,
    RobotCallResult,
    SendReceipt,
    SendRequest,
    StageRecord,
    SuppressionRecord,
)
from renewals.db.database import Database
from renewals.db.tables import JourneyRow, OperatorTaskRow
from renewals.db.upsert import insert_ignoring_conflict
from renewals.outbox import Outbox
from renewals.privacy import mask_address

log = logging.getLogger(__name__)


class JourneyActivities:
    def __init__(self, db: Database, channels: Channels) -> None:
        self.db = db
        self.channels = channels
        self.outbox = Outbox(db)

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.send_message,
            self.record_suppressed,
            self.place_robot_call,
            self.open_operator_task,
            self.check_portal,
            self.record_stage,
        ]

    @activity.defn(name="send_message")
    async def send_message(self, request: SendRequest) -> SendReceipt:
        """Send one message exactly once: claim the outbox row, send with its key, mark it sent."""
        state = await self.outbox.claim(request)
        if state.status == "sent" and state.provider and state.provider_message_id:
            return SendReceipt(provider=state.provider, provider_message_id=state.provider_message_id)
        if state.status == "failed":
            error_type, _, message = (state.reason or "SendFailed: ").partition(": ")
            raise ApplicationError(message, type=error_type, non_retryable=True)
        try:
            provider = self.channels.for_channel(request.channel)
            message_id = await provider.send(request)
        except PermanentSendError as error:
            await self.outbox.mark(request.dedup_key, "failed", reason=f"{error.error_type}: {error.message}")
            log.warning(
                "send %s to %s failed permanently: %s",
                request.dedup_key,
                mask_address(request.channel.value, request.recipient),
                error.error_type,
            )
            raise ApplicationError(error.message, type=error.error_type, non_retryable=True) from error
        await self.outbox.mark(
            request.dedup_key, "sent", provider=provider.name, provider_message_id=message_id
        )
        log.info("sent %s to %s", request.dedup_key, mask_address(request.channel.value, request.recipient))
        return SendReceipt(provider=provider.name, provider_message_id=message_id)

    @activity.defn(name="record_suppressed")
    async def record_suppressed(self, record: SuppressionRecord) -> None:
        await self.outbox.record(record)

    @activity.defn(name="place_robot_call")
    async def place_robot_call(self, request: RobotCallRequest) -> RobotCallResult:
        try:
            return await self.channels.robot.place_call(request)
        except PermanentSendError as error:
            raise ApplicationError(error.message, type=error.error_type, non_retryable=True) from error

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
