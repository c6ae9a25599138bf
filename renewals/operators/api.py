"""`/operators/…`: the workbench over HTTP for the renewal centres' own tools.

Authenticated with the `operators` secret as a bearer token; refusals come back with the
workbench's reason as `detail` (404 unknown task; 409 closed, claimed by someone else, or refused by
the journey's validator; 422 bad outcome, no operator name, or a task id that is not a whole number
from 1 to 2147483647).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import BaseModel, Field

from renewals.journey_api import OperatorOutcome
from renewals.operators.workbench import MAX_OPERATOR, Refused, Task, Workbench, parse_task_id

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

    return router
