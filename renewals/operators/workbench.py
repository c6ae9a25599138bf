"""Operator tasks: the service behind `renewals operator …` and `/operators/…`.

An outcome reaches the journey first (the validated `operator_outcome` update), then the task row.
`callback` keeps the task open — the journey keeps it open too, so the operator records the real
outcome on the same task later — and lists it as due again at `callback_at`; every other outcome
closes it. Every outcome names its operator: a claimed task takes one only from its claimer.

A task ends with its journey: when the journey ends (paid, renewed, opted out, cancelled, refused,
lapsed) it closes the tasks still open, with its outcome as `closed_reason`. The centre's list shows
only open tasks of journeys still running, and an outcome or a claim for a closed task is refused with
the reason it closed."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, computed_field
from sqlalchemy import exists, select, update
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from renewals.db.database import Database, as_utc
from renewals.db.tables import AgentRow, JourneyRow, OperatorTaskRow, PolicyRow
from renewals.db.tables_ops import OperatorClaimRow
from renewals.journey_api import TERMINAL_STAGES, OperatorOutcome, OperatorOutcomeReport
from renewals.models import journey_id
from renewals.temporal.journeys import report_operator_outcome

log = logging.getLogger(__name__)
NOBODY = "-"  # the claim row's operator of outcomes recorded without a name (before names were required)
MAX_TASK_ID = 2**31 - 1  # operator_tasks.id is an INTEGER: PostgreSQL's range
MAX_OPERATOR = 100  # operator_claims.operator is a String(100)
# A task's fields that its row holds as they are.
TASK_COLUMNS = (
    "id",
    "journey_id",
    "policy_number",
    "centre_id",
    "reason",
    "text",
    "status",
    "outcome",
    "closed_reason",
)


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


def parse_task_id(raw: object) -> int:
    """A task id as the CLI or the API received it: a whole number from 1 to MAX_TASK_ID, else 422."""
    text = str(raw).strip()
    if text.isascii() and text.isdigit() and len(text) <= len(str(MAX_TASK_ID)):
        number = int(text)
        if 1 <= number <= MAX_TASK_ID:
            return number
    shown = text if len(text) <= 20 else text[:20] + "…"
    raise InvalidOutcome(f"a task id is a whole number from 1 to {MAX_TASK_ID}, not {shown!r}")


def operator_name(raw: str | None) -> str:
    """Who acts on a task: required, so that an outcome can be checked against the task's claim."""
    name = (raw or "").strip()
    if not name or name == NOBODY:
        raise InvalidOutcome("an operator name is required")
    if len(name) > MAX_OPERATOR or not name.isprintable():
        raise InvalidOutcome(f"an operator name is at most {MAX_OPERATOR} printable characters")
    return name


class Task(BaseModel):  # an operator task as the workbench shows it: the CLI's table, the API's answer
    model_config = ConfigDict(frozen=True)

    id: int
    journey_id: str
    policy_number: str
    centre_id: str
    reason: str
    text: str
    status: str
    outcome: str | None
    closed_reason: str | None = Field(
        default=None, description="why it closed without an outcome: its journey ended (paid, …)"
    )
    operator: str | None
    created_at: datetime
    agent_id: str | None = Field(description="the agent who keeps this renewal")
    agent_name: str | None
    agent_phone: str | None
    note: str | None  # the operator's last note
    callback_at: datetime | None = Field(description="the promised call back, if the outcome was callback")

    @computed_field(description="when the task wants an operator: callback_at, else created_at")  # type: ignore[prop-decorator]
    @property
    def due_at(self) -> datetime:
        return self.callback_at or self.created_at


@dataclass(frozen=True)
class OutcomeResult:
    task: Task
    stage: str | None  # the journey's stage after the outcome; None if it had already finished
    message: str


class Workbench:
    def __init__(self, db: Database, client: Client) -> None:
        self.db = db
        self.client = client

    async def tasks(
        self, centre_id: str, include_closed: bool = False, due_by: datetime | None = None
    ) -> list[Task]:
        """A centre's tasks, the most overdue first: only open tasks of journeys still running, unless
        `include_closed`. With `due_by`, only open tasks due by then: a task with a promised call back
        drops out of the list until its time comes."""
        query = select(OperatorTaskRow).where(OperatorTaskRow.centre_id == centre_id)
        if not include_closed or due_by is not None:
            ended = exists().where(
                JourneyRow.id == OperatorTaskRow.journey_id,
                JourneyRow.stage.in_([stage.value for stage in TERMINAL_STAGES]),
            )
            query = query.where(OperatorTaskRow.status != "closed", ~ended)
        async with self.db.session() as session:
            rows = (await session.scalars(query.order_by(OperatorTaskRow.id))).all()
        views = [await self._view(row) for row in rows]
        if due_by is not None:
            views = [view for view in views if view.due_at <= due_by]
        return sorted(views, key=lambda view: (view.due_at, view.id))

    async def task(self, task_id: int) -> Task:
        return await self._view(await self._row(task_id))

    async def claim(self, task_id: int, operator: str) -> Task:
        task_id, operator = _checked_id(task_id), operator_name(operator)
        async with self.db.session() as session, session.begin():
            row = await session.get(OperatorTaskRow, task_id)
            if row is None:
                raise UnknownTask(f"operator task {task_id} does not exist")
            if row.status == "closed":
                raise Refused(closed(row))
            claim = await session.get(OperatorClaimRow, task_id)
            if claim is not None and claim.operator not in (operator, NOBODY):
                raise Refused(f"operator task {task_id} is already claimed by {claim.operator}")
            if claim is None:
                session.add(
                    OperatorClaimRow(task_id=task_id, operator=operator, claimed_at=datetime.now(UTC))
                )
            elif claim.operator == NOBODY:  # an outcome was recorded without a claim: take it now
                claim.operator, claim.claimed_at = operator, datetime.now(UTC)
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
        """The outcome, recorded by `operator` (required): a claimed task takes it only from its
        claimer; an unclaimed one is claimed by whoever records it."""
        row = await self._row(task_id)
        if row.status == "closed":
            raise Refused(closed(row))
        if outcome is OperatorOutcome.CALLBACK:
            if callback_at is None:
                raise InvalidOutcome("a callback outcome needs the time to call back (callback_at)")
            if callback_at.tzinfo is None:
                raise InvalidOutcome("callback_at needs a UTC offset, e.g. 2027-03-20T15:00:00+03:00")
            if callback_at <= datetime.now(UTC):
                raise InvalidOutcome(f"callback_at {callback_at.isoformat()} is in the past")
        operator = operator_name(operator)
        claimed_by = await self._claimant(task_id)
        if claimed_by and claimed_by != operator:
            raise Refused(f"operator task {task_id} is claimed by {claimed_by}, not {operator}")
        report = OperatorOutcomeReport(
            task_id=str(task_id), outcome=outcome, note=note, callback_at=callback_at
        )
        stage: str | None
        try:
            status = await report_operator_outcome(self.client, row.journey_id, report)
            stage, message = status.stage.value, f"recorded; journey is now {status.stage.value}"
        except WorkflowUpdateFailedError as error:
            reason = str(getattr(error.cause, "message", None) or error.cause or error)
            if "already closed" in reason:  # the journey has it; our row missed the close: catch up
                await self._record(task_id, outcome, note, None, operator, close=True)
            raise Refused(reason) from error
        except RPCError as error:
            if error.status is not RPCStatusCode.NOT_FOUND:
                raise
            stage, message = None, "the journey had already finished; the outcome is recorded on the task"
            callback_at = None  # nobody will call back for a finished journey
        # A callback keeps the task open (the journey does too): it is due again at callback_at.
        keep_open = outcome is OperatorOutcome.CALLBACK and stage is not None
        await self._record(task_id, outcome, note, callback_at, operator, close=not keep_open)
        view = await self.task(task_id)
        log.info(
            "operator task %s %s: %s (agent %s kept)",
            task_id,
            f"due again at {callback_at:%Y-%m-%d %H:%M %Z}" if keep_open and callback_at else "closed",
            outcome.value,
            view.agent_id,
        )
        return OutcomeResult(view, stage, message)

    async def _record(
        self,
        task_id: int,
        outcome: OperatorOutcome,
        note: str | None,
        callback_at: datetime | None,
        operator: str,
        close: bool,
    ) -> None:
        """The outcome on the task row (closed, unless it is a call back) and the claim's note."""
        now = datetime.now(UTC)
        closing = {"status": "closed", "closed_at": now} if close else {}
        async with self.db.session() as session, session.begin():
            await session.execute(
                update(OperatorTaskRow)
                .where(OperatorTaskRow.id == task_id)
                .values(outcome=outcome.value, **closing)
            )
            claim = await session.get(OperatorClaimRow, task_id)
            if claim is None:
                claim = OperatorClaimRow(task_id=task_id, operator=operator, claimed_at=now)
                session.add(claim)
            elif claim.operator == NOBODY:  # an outcome recorded without a name before: now it has one
                claim.operator = operator
            claim.note = note
            claim.callback_at = callback_at

    async def _row(self, task_id: int) -> OperatorTaskRow:
        task_id = _checked_id(task_id)
        async with self.db.session() as session:
            row = await session.get(OperatorTaskRow, task_id)
        if row is None:
            raise UnknownTask(f"operator task {task_id} does not exist")
        return row

    async def _claimant(self, task_id: int) -> str | None:
        return _operator(await self._claim_row(task_id))

    async def _claim_row(self, task_id: int) -> OperatorClaimRow | None:
        async with self.db.session() as session:
            return await session.get(OperatorClaimRow, task_id)

    async def _view(self, row: OperatorTaskRow) -> Task:
        async with self.db.session() as session:
            terms = (
                await session.execute(
                    select(PolicyRow.number, PolicyRow.expires_on, AgentRow)
                    .join(AgentRow, PolicyRow.agent_id == AgentRow.id)
                    .where(PolicyRow.number == row.policy_number)
                )
            ).all()
        agent = next((a for number, ends, a in terms if journey_id(number, ends) == row.journey_id), None)
        claim = await self._claim_row(row.id)
        return Task(
            **{name: getattr(row, name) for name in TASK_COLUMNS},
            created_at=as_utc(row.created_at),
            operator=_operator(claim),
            agent_id=agent.id if agent else None,
            agent_name=agent.name if agent else None,
            agent_phone=agent.phone if agent else None,
            note=claim.note if claim else None,
            callback_at=as_utc(claim.callback_at) if claim and claim.callback_at else None,
        )


def closed(row: OperatorTaskRow) -> str:
    """Why a closed task takes no claim or outcome: its operator's outcome, or its journey's end."""
    if row.closed_reason and not row.outcome:
        return f"operator task {row.id} is already closed: {row.closed_reason}; nothing to record"
    return f"operator task {row.id} is already closed (outcome: {row.outcome})"


def _checked_id(number: int) -> int:
    """An id past the column's range names no task (and the database would refuse to look it up)."""
    if not 1 <= number <= MAX_TASK_ID:
        raise UnknownTask(f"no such operator task: task ids go from 1 to {MAX_TASK_ID}")
    return number


def _operator(claim: OperatorClaimRow | None) -> str | None:
    """Who claimed the task, if anyone did."""
    return claim.operator if claim and claim.operator != NOBODY else None
