"""`/operators/…`: the workbench over HTTP for the renewal centres' own tools.

Authenticated with the `operators` secret as a bearer token; refusals come back with the
workbench's reason as `detail` (404 unknown task; 409 closed, claimed by someone else, or refused by
the journey's validator; 422 bad outcome, no operator name, or a task id that is not a whole number
from 1 to 2147483647).

The same secret guards the do-not-contact list (`/operators/optouts…`: list, changes, lookup, add,
remove, import — addresses travel only in bodies, never in a URL an access log keeps, and come back
masked) and the cancellation of a journey (`/operators/journeys/cancel`). Every change names its
operator and reason; the service records when.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response
from pydantic import BaseModel, Field

from renewals.journey_api import OperatorOutcome
from renewals.operators.cancel import cancel
from renewals.operators.workbench import MAX_OPERATOR, Refused, Task, Workbench, parse_task_id
from renewals.optout_register import (
    MAX_REASON,
    AddResult,
    Change,
    Entry,
    ImportLine,
    ImportResult,
    Register,
    RegisterRefused,
)

T = TypeVar("T")
TaskId = Annotated[str, Path(description="the task id, a whole number from 1 to 2147483647")]


class ClaimRequest(BaseModel):
    operator: str = Field(min_length=1, max_length=MAX_OPERATOR)


class OutcomeRequest(BaseModel):
    outcome: OperatorOutcome
    note: str | None = None
    callback_at: datetime | None = None
    operator: str | None = Field(
        default=None, description="required: who records it (the claimer, if the task is claimed)"
    )


class OutcomeResponse(BaseModel):
    task: Task
    stage: str | None
    message: str


Address = Annotated[str, Field(min_length=1, max_length=320, description="a phone, an e-mail or vk:<id>")]
Operator = Annotated[str, Field(min_length=1, max_length=MAX_OPERATOR, description="who makes the change")]
Reason = Annotated[str, Field(min_length=1, max_length=MAX_REASON, description="why")]


class AddressLookup(BaseModel):
    address: Address


class OptOutChange(BaseModel):
    address: Address
    reason: Reason
    operator: Operator


class ImportEntry(BaseModel):
    address: Address
    reason: Reason | None = None


class OptOutImport(BaseModel):
    entries: list[ImportEntry] = Field(max_length=10_000)
    reason: Reason | None = Field(default=None, description="for the entries that give none")
    operator: Operator


class CancelRequest(BaseModel):
    policy: str = Field(min_length=1, max_length=200, description="a policy number or a journey id")
    expires_on: date | None = Field(default=None, description="the term's last day of cover")
    reason: str = Field(min_length=1, max_length=300, description="why (no client contacts: kept in clear)")
    operator: Operator


class CancelResponse(BaseModel):
    journey_id: str
    stage: str | None = Field(description="its stage when the cancellation was asked for")
    reason: str
    message: str


def operator_router(workbench: Workbench, authorised: Callable[..., Awaitable[None]]) -> APIRouter:
    router = APIRouter(prefix="/operators", tags=["operator workbench"], dependencies=[Depends(authorised)])

    async def refusing(call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await call()
        except Refused as refusal:
            raise HTTPException(status_code=refusal.status, detail=refusal.reason) from refusal

    @router.get("/centres/{centre_id}/tasks", response_model=list[Task])
    async def list_tasks(centre_id: str, include_closed: bool = False, due: bool = False) -> list[Task]:
        """`due=true`: only open tasks due now (a promised call back waits for its time)."""
        due_by = datetime.now(UTC) if due else None
        return await workbench.tasks(centre_id, include_closed, due_by)

    # The task id is read here, not by FastAPI's `int`: one beyond the column's range (or malformed)
    # is a 422 with the workbench's one-line reason, never a database error.
    @router.post("/tasks/{task_id}/claim", response_model=Task)
    async def claim(task_id: TaskId, body: ClaimRequest) -> Task:
        return await refusing(lambda: workbench.claim(parse_task_id(task_id), body.operator))

    @router.post("/tasks/{task_id}/outcome", response_model=OutcomeResponse)
    async def outcome(task_id: TaskId, body: OutcomeRequest) -> OutcomeResponse:
        result = await refusing(
            lambda: workbench.record_outcome(
                parse_task_id(task_id), body.outcome, body.note, body.callback_at, body.operator
            )
        )
        return OutcomeResponse(task=result.task, stage=result.stage, message=result.message)

    register = Register(workbench.db)

    async def registering(call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await call()
        except RegisterRefused as refusal:
            raise HTTPException(status_code=refusal.status, detail=refusal.reason) from refusal

    @router.get("/optouts", response_model=list[Entry], tags=["do-not-contact list"])
    async def optouts(limit: Annotated[int, Query(ge=1, le=10_000)] = 500) -> list[Entry]:
        """The list, newest first: hashes and masked addresses, who listed each, why and when."""
        return await register.entries(limit)

    @router.get("/optouts/changes", response_model=list[Change], tags=["do-not-contact list"])
    async def optout_changes(limit: Annotated[int, Query(ge=1, le=10_000)] = 500) -> list[Change]:
        """Every addition and removal, newest first."""
        return await register.changes(None, limit)

    @router.post("/optouts/lookup", response_model=Entry, tags=["do-not-contact list"])
    async def optout_lookup(body: AddressLookup) -> Entry:
        """Whether an address is listed (404 if not)."""
        found = await registering(lambda: register.find(body.address))
        if found is None:
            raise HTTPException(status_code=404, detail="the address is not on the do-not-contact list")
        return found

    @router.post("/optouts", response_model=AddResult, tags=["do-not-contact list"])
    async def optout_add(body: OptOutChange, response: Response) -> AddResult:
        """List an address (201; 200 if it was already listed: its first entry stays)."""
        result = await registering(lambda: register.add(body.address, body.reason, body.operator, "http"))
        response.status_code = 201 if result.added else 200
        return result

    @router.post("/optouts/remove", response_model=Entry, tags=["do-not-contact list"])
    async def optout_remove(body: OptOutChange) -> Entry:
        """Take an address off the list (404 not listed; 409 listed by an erasure request)."""
        return await registering(lambda: register.remove(body.address, body.reason, body.operator, "http"))

    @router.post("/optouts/import", response_model=ImportResult, tags=["do-not-contact list"])
    async def optout_import(body: OptOutImport) -> ImportResult:
        """List many; each unusable entry is reported by its position (1-based), the rest listed."""
        lines = [ImportLine(n, e.address, e.reason) for n, e in enumerate(body.entries, start=1)]
        return await registering(lambda: register.import_(lines, body.reason, body.operator, "http"))

    @router.post("/journeys/cancel", response_model=CancelResponse, status_code=202, tags=["journeys"])
    async def cancel_journey(body: CancelRequest) -> CancelResponse:
        """Ask a running journey to cancel itself (404 no such journey, 409 already ended, 422 bad
        reason): it records `cancelled` with the reason, closes its operator tasks, then ends."""
        requested = await refusing(
            lambda: cancel(
                workbench.db, workbench.client, body.policy, body.expires_on, body.reason, body.operator
            )
        )
        return CancelResponse(
            journey_id=requested.journey_id,
            stage=requested.stage,
            reason=requested.reason,
            message="cancellation requested: the journey closes its operator tasks and ends as cancelled",
        )

    return router
