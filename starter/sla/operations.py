"""Operations on live application journeys: submit, change a status, record an answer, read the
status — through typed handles on `PartnerApplication`, with the journey's refusals, and missing or
finished journeys, as one-line errors."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import FailureError
from temporalio.service import RPCError, RPCStatusCode

from renewals.sla.models import (
    ApplicationInput,
    ApplicationStatus,
    EscalationAnswer,
    StatusChange,
    application_workflow_id,
)
from starter.inputs import InputError
from workflows.sla import PartnerApplication


class ApplicationNotFound(LookupError):
    """A status change for an application that has no journey."""


class StatusRefused(ValueError):
    """A status change or an answer the journey refused (an unknown transition, a closed journey,
    nothing awaiting an answer)."""


JourneyHandle = WorkflowHandle[PartnerApplication, ApplicationStatus]


class Target(BaseModel):
    """Which journey a command means, and how its messages name it."""

    model_config = ConfigDict(frozen=True)

    workflow_id: str
    label: str


def target(application: str, partner: str | None = None) -> Target:
    """`ID --partner P` names an application; a bare ID must be its workflow id (`sla-...`, as
    `submit` prints it), because the partner is part of the id."""
    if partner is not None:
        return Target(
            workflow_id=application_workflow_id(partner, application),
            label=f"application {application} of partner {partner}",
        )
    if application.startswith("sla-"):
        return Target(workflow_id=application, label=f"application {application}")
    raise InputError(
        f"application {application}: give --partner P, or the workflow id (sla-<partner>-<application>)"
    )


async def _updating(
    client: Client, to: Target, what: str, call: Callable[[JourneyHandle], Awaitable[ApplicationStatus]]
) -> ApplicationStatus:
    """Run a validated update; refusals and missing or finished journeys become one-line errors."""
    handle = client.get_workflow_handle_for(PartnerApplication.run, to.workflow_id)
    try:
        return await call(handle)
    except WorkflowUpdateFailedError as error:
        # The validator's reason, without the "ValueError: " its failure's type would prefix.
        reason = error.cause.message if isinstance(error.cause, FailureError) else str(error)
        raise StatusRefused(reason) from None
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            with contextlib.suppress(RPCError):
                described = await handle.describe()
                state = described.status.name.lower() if described.status else "closed"
                raise StatusRefused(
                    f"{to.label}: its journey has finished ({state}); {what} is not possible"
                ) from None
            raise ApplicationNotFound(f"{to.label}: not found (workflow {to.workflow_id})") from None
        raise


async def change_status_of(client: Client, to: Target, change: StatusChange) -> ApplicationStatus:
    return await _updating(
        client,
        to,
        change.status.value,
        lambda handle: handle.execute_update(PartnerApplication.change_status, change),
    )


async def change_status(
    client: Client, partner: str, application_id: str, change: StatusChange
) -> ApplicationStatus:
    """The partner cabinet's and the CLI's way in: a validated update of the application's journey."""
    return await change_status_of(client, target(application_id, partner), change)


async def record_answer(client: Client, to: Target, answer: EscalationAnswer) -> ApplicationStatus:
    """Checklist step 4 by an operator: the answer to the oldest awaiting escalation (or `clock`'s)."""
    return await _updating(
        client,
        to,
        "an answer",
        lambda handle: handle.execute_update(PartnerApplication.record_answer, answer),
    )


async def query_status(client: Client, to: Target) -> ApplicationStatus:
    """The journey's query, with clocks computed for the caller's clock (see PartnerApplication.status)."""
    handle = client.get_workflow_handle_for(PartnerApplication.run, to.workflow_id)
    try:
        return await handle.query(PartnerApplication.status, datetime.now(UTC))
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            raise ApplicationNotFound(f"{to.label}: not found") from None
        raise


async def application_status(client: Client, partner: str, application_id: str) -> ApplicationStatus:
    return await query_status(client, target(application_id, partner))


async def start_application(client: Client, application: ApplicationInput, task_queue: str) -> str:
    """Start the journey at submission; a repeated start attaches to the running journey."""
    workflow_id = application_workflow_id(application.partner, application.id)
    await client.start_workflow(
        PartnerApplication.run,
        application,
        id=workflow_id,
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        static_summary=f"Application {application.id} ({application.partner})",
    )
    return workflow_id
