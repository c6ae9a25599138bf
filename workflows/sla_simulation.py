"""SimulateApplication: drives one PartnerApplication from a script on the server's clock.

`renewals sla simulate` runs one driver per application on the time-skipping server: it sleeps until
the submission, starts the journey as its child, signals each scripted change at its moment, and
closes the journey at the horizon if it has not finished by then.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime

from pydantic import BaseModel, ConfigDict
from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from renewals.sla import application_api as api
    from renewals.sla.models import ApplicationInput, ApplicationStatus, CloseRequest, StatusChange

from workflows.sla import PartnerApplication
from workflows.timing import sleep_until


class TimedChange(BaseModel):
    model_config = ConfigDict(frozen=True)

    at: datetime
    change: StatusChange


class SimulationRun(BaseModel):
    """One scripted application: submitted at `submitted_at`, changes at their moments, and closed at
    `horizon` (after every clock that could still run is past its breach) if it is not finished."""

    model_config = ConfigDict(frozen=True)

    workflow_id: str
    application: ApplicationInput
    submitted_at: datetime
    changes: list[TimedChange]
    horizon: datetime


async def _outcome(
    handle: workflow.ChildWorkflowHandle[PartnerApplication, ApplicationStatus],
) -> ApplicationStatus:
    return await handle


@workflow.defn(name=api.SIMULATION_WORKFLOW_TYPE)
class SimulateApplication:
    @workflow.run
    async def run(self, run: SimulationRun) -> ApplicationStatus:
        await sleep_until(run.submitted_at, "until the submission")
        handle = await workflow.start_child_workflow(
            PartnerApplication.run, run.application, id=run.workflow_id
        )
        outcome = asyncio.create_task(_outcome(handle))
        for timed in sorted(run.changes, key=lambda t: t.at):
            await sleep_until(timed.at, timed.change.status.value)
            if outcome.done():
                break
            try:
                change = timed.change.model_copy(update={"at": timed.at})
                await handle.signal(PartnerApplication.status_changed, change)
            except ApplicationError:
                break  # the journey has already finished; later events have nowhere to go
        if not outcome.done() and run.horizon > workflow.now():
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    outcome.done,
                    timeout=run.horizon - workflow.now(),
                    timeout_summary="until every running clock is past its breach",
                )
        if not outcome.done():
            await handle.signal(
                PartnerApplication.close, CloseRequest(by="simulation", reason="end of script")
            )
        return await outcome
