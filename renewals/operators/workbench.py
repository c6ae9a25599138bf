"""Operator tasks: the service behind `renewals operator …` and `/operators/…`."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from renewals.db.database import Database
from renewals.db.tables import AgentRow, OperatorTaskRow, PolicyRow
from renewals.db.tables_ops import OperatorClaimRow
from renewals.journey import JourneyStatus, OperatorOutcome, OperatorOutcomeReport
from renewals.models import journey_id

log = logging.getLogger(__name__)


class Refused(Exception):
    """The workbench will not do this; `reason` says why, `status` is the HTTP status to answer."""

    status = 409

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnknownTask(Refused):
    status = 404


class InvalidOutcome(Refused):
    status = 422


@dataclass(frozen=True)
class TaskView:
    id: int
    journey_id: str
    policy_number: str
    centre_id: str
    reason: str
    text: str
    status: str
    outcome: str | None
    operator: str | None
    created_at: datetime
    agent_id: str | None  # whose client this is: the renewal stays with this agent
    agent_name: str | None
    agent_phone: str | None


@dataclass(frozen=True)
class OutcomeResult:
    task: TaskView
    stage: str | None  # the journey's stage after the outcome; None if it had already finished
    message: str


class Workbench:
    def __init__(self, db: Database, client: Client) -> None:
        self.db = db
        self.client = client

    async def tasks(self, centre_id: str, include_closed: bool = False) -> list[TaskView]:
        query = select(OperatorTaskRow).where(OperatorTaskRow.centre_id == centre_id)
        if not include_closed:
            query = query.where(OperatorTaskRow.status != "closed")
        async with self.db.session() as session:
            rows = (
                await session.scalars(query.order_by(OperatorTaskRow.created_at, OperatorTaskRow.id))
            ).all()
        return [await self._view(row) for row in rows]

    async def task(self, task_id: int) -> TaskView:
        return await self._view(await self._row(task_id))

    async def claim(self, task_id: int, operator: str) -> TaskView:
        if not operator.strip():
            raise InvalidOutcome("an operator name is required")
        async with self.db.session() as session, session.begin():
            row = await session.get(OperatorTaskRow, task_id)
            if row is None:
                raise UnknownTask(f"operator task {task_id} does not exist")
            if row.status == "closed":
                raise Refused(f"operator task {task_id} is already closed (outcome: {row.outcome})")
            claim = await session.get(OperatorClaimRow, task_id)
            if claim is not None and claim.operator != operator:
                raise Refused(f"operator task {task_id} is already claimed by {claim.operator}")
            if claim is None:
                session.add(
                    OperatorClaimRow(task_id=task_id, operator=operator, claimed_at=datetime.now(UTC))
                )
            row.status = "claimed"
        return await self.task(task_id)

    async def record_outcome(
        self,
        task_id: int,
        outcome: OperatorOutcome,
        note: str | None = None,
        callback_at: datetime | None = None,
        operator: str | None = None,
    ) -> OutcomeResult:
        row = await self._row(task_id)
        if row.status == "closed":
            raise Refused(f"operator task {task_id} is already closed (outcome: {row.outcome})")
        claimed_by = await self._claimant(task_id)
        if operator and claimed_by and claimed_by != operator:
            raise Refused(f"operator task {task_id} is claimed by {claimed_by}, not {operator}")
        if outcome is OperatorOutcome.CALLBACK:
            if callback_at is None:
                raise InvalidOutcome("a callback outcome needs the time to call back (callback_at)")
            if callback_at.tzinfo is None:
                raise InvalidOutcome("callback_at needs a UTC offset, e.g. 2027-03-20T15:00:00+03:00")
            if callback_at <= datetime.now(UTC):
                raise InvalidOutcome(f"callback_at {callback_at.isoformat()} is in the past")
        report = OperatorOutcomeReport(
            task_id=str(task_id), outcome=outcome, note=note, callback_at=callback_at
        )
        handle = self.client.get_workflow_handle(row.journey_id, result_type=JourneyStatus)
        stage: str | None
        try:
            status = await handle.execute_update("operator_outcome", report, result_type=JourneyStatus)
            stage, message = status.stage.value, f"recorded; journey is now {status.stage.value}"
        except WorkflowUpdateFailedError as error:
            reason = str(getattr(error.cause, "message", None) or error.cause or error)
            if "already closed" in reason:  # the journey has it; our row missed the close: catch up
                await self._close(task_id, outcome, note, callback_at, operator)
            raise Refused(reason) from error
        except RPCError as error:
            if error.status is not RPCStatusCode.NOT_FOUND:
                raise
            stage, message = None, "the journey had already finished; the outcome is recorded on the task"
        await self._close(task_id, outcome, note, callback_at, operator)
        view = await self.task(task_id)
        log.info("operator task %s closed: %s (agent %s kept)", task_id, outcome.value, view.agent_id)
        return OutcomeResult(view, stage, message)

    async def _close(
        self,
        task_id: int,
        outcome: OperatorOutcome,
        note: str | None,
        callback_at: datetime | None,
        operator: str | None,
    ) -> None:
        now = datetime.now(UTC)
        async with self.db.session() as session, session.begin():
            await session.execute(
                update(OperatorTaskRow)
                .where(OperatorTaskRow.id == task_id)
                .values(status="closed", outcome=outcome.value, closed_at=now)
            )
            claim = await session.get(OperatorClaimRow, task_id)
            if claim is None:
                claim = OperatorClaimRow(task_id=task_id, operator=operator or "-", claimed_at=now)
                session.add(claim)
            claim.note = note
            claim.callback_at = callback_at

    async def _row(self, task_id: int) -> OperatorTaskRow:
        async with self.db.session() as session:
            row = await session.get(OperatorTaskRow, task_id)
        if row is None:
            raise UnknownTask(f"operator task {task_id} does not exist")
        return row

    async def _claimant(self, task_id: int) -> str | None:
        async with self.db.session() as session:
            claim = await session.get(OperatorClaimRow, task_id)
        return claim.operator if claim else None

    async def _view(self, row: OperatorTaskRow) -> TaskView:
        async with self.db.session() as session:
            terms = (
                await session.execute(
                    select(PolicyRow.number, PolicyRow.expires_on, AgentRow)
                    .join(AgentRow, PolicyRow.agent_id == AgentRow.id)
                    .where(PolicyRow.number == row.policy_number)
                )
            ).all()
        agent = next((a for number, ends, a in terms if journey_id(number, ends) == row.journey_id), None)
        return TaskView(
            id=row.id,
            journey_id=row.journey_id,
            policy_number=row.policy_number,
            centre_id=row.centre_id,
            reason=row.reason,
            text=row.text,
            status=row.status,
            outcome=row.outcome,
            operator=await self._claimant(row.id),
            created_at=row.created_at,
            agent_id=agent.id if agent else None,
            agent_name=agent.name if agent else None,
            agent_phone=agent.phone if agent else None,
        )
