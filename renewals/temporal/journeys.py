"""Every call a caller makes on a renewal journey, by the wire names in `renewals.journey_api`.

Starting: deterministic id, search attributes and summaries for the UI. A duplicate start attaches to
the running journey (USE_EXISTING) and a finished term is never started again (REJECT_DUPLICATE), so
intake can be re-run as often as it likes. Errors (`RPCError`, `WorkflowUpdateFailedError`) reach the
caller unchanged.

Cancelling: `cancel_journey` is Temporal's own cancellation request, with its reason — the same path
the UI's «Request Cancellation» takes — which the journey handles (outcome `cancelled`, its operator
tasks closed, `record_stage` written). The reason is kept in the history in clear (a cancellation
request carries no payload to encrypt), so it must not name the client: `cancellation_reason` refuses
one that quotes a phone or an e-mail.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import phonenumbers
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import SignalWorkflowExecutionRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from renewals import journey_api as api
from renewals import models
from renewals import search_attributes as sa
from renewals.journey_api import (
    JourneyEvent,
    JourneyInput,
    JourneyStatus,
    OperatorOutcomeReport,
    RobotOutcomeReport,
)
from renewals.models import Policy
from renewals.rules import segment_of
from renewals.sendwindow import SendWindow
from renewals.templates import PRODUCT_NAMES, format_date


def summary(policy: Policy) -> str:
    """One line an operator reads in the workflow list (no personal data)."""
    product = PRODUCT_NAMES[policy.product]
    return (
        f"Пролонгация {product} № {policy.number} до {format_date(policy.expires_on)} "
        f"({segment_of(policy).value}, агент {policy.agent.id})"
    )


def details(policy: Policy) -> str:
    centre = policy.regional_centre
    lines = [
        f"**Policy** {policy.number} · {policy.product.value}"
        + (f" · code {policy.product_code}" if policy.product_code else "")
        + (f" · bank {policy.bank.value}" if policy.bank else ""),
        f"**Last day of cover** {policy.expires_on:%d.%m.%Y}",
        f"**Segment** {segment_of(policy).value}"
        + (" · first prolongation year" if policy.first_prolongation_year else ""),
        f"**Agent** {policy.agent.id}",
        f"**Renewal centre** {centre.name} ({centre.id})" if centre else "**Renewal centre** —",
        f"**Client time zone** {policy.client.timezone}",
    ]
    return "\n\n".join(lines)


async def start_journey(
    client: Client,
    policy: Policy,
    task_queue: str,
    window: SendWindow,
    attach: bool = True,
    holdouts: tuple[api.Holdout, ...] = (),
) -> WorkflowHandle[Any, JourneyStatus]:
    """Start the term's journey. `attach=False` raises `WorkflowAlreadyStartedError` instead of
    attaching when the term's journey already runs (intake wants to know, to sync it instead).
    `holdouts`: the experiments holding this client out of some touchpoints (renewals/experiments)."""
    return await client.start_workflow(
        api.WORKFLOW_TYPE,
        JourneyInput(policy=policy, window=window, holdouts=holdouts),
        id=models.journey_id(policy.number, policy.expires_on),
        task_queue=task_queue,
        result_type=JourneyStatus,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING if attach else WorkflowIDConflictPolicy.FAIL,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        static_summary=summary(policy),
        static_details=details(policy),
    )


def _handle(client: Client, journey_id: str) -> WorkflowHandle[Any, JourneyStatus]:
    return client.get_workflow_handle(journey_id, result_type=JourneyStatus)


async def _signal(client: Client, journey_id: str, name: str, arg: Any, request_id: str | None) -> None:
    """A signal; with a `request_id` the server keeps it once per run, however often it is repeated
    (a caller that cannot know whether an earlier attempt arrived re-sends with the same id)."""
    if request_id is None:
        await _handle(client, journey_id).signal(name, arg)
        return
    request = SignalWorkflowExecutionRequest(
        namespace=client.namespace,
        workflow_execution=WorkflowExecution(workflow_id=journey_id),
        signal_name=name,
        identity=client.identity,
        request_id=request_id,
    )
    request.input.payloads.extend(await client.data_converter.encode([arg]))
    await client.workflow_service.signal_workflow_execution(request, retry=True)


async def send_event(
    client: Client, journey_id: str, event: JourneyEvent, request_id: str | None = None
) -> None:
    await _signal(client, journey_id, api.EVENT_SIGNAL, event, request_id)


async def send_robot_outcome(
    client: Client, journey_id: str, report: RobotOutcomeReport, request_id: str | None = None
) -> None:
    await _signal(client, journey_id, api.ROBOT_OUTCOME_SIGNAL, report, request_id)


async def report_operator_outcome(
    client: Client, journey_id: str, report: OperatorOutcomeReport
) -> JourneyStatus:
    status: JourneyStatus = await _handle(client, journey_id).execute_update(
        api.OPERATOR_OUTCOME_UPDATE, report, result_type=JourneyStatus
    )
    return status


async def update_policy(client: Client, journey_id: str, policy: Policy) -> JourneyStatus:
    status: JourneyStatus = await _handle(client, journey_id).execute_update(
        api.POLICY_UPDATE, policy, result_type=JourneyStatus
    )
    return status


async def journey_status(client: Client, journey_id: str) -> JourneyStatus:
    status: JourneyStatus = await _handle(client, journey_id).query(
        api.STATUS_QUERY, result_type=JourneyStatus
    )
    return status


async def execution_status(client: Client, journey_id: str) -> WorkflowExecutionStatus | None:
    """The journey's execution status (running, completed…), or None when there is no such workflow."""
    found = await execution(client, journey_id)
    return found[0] if found else None


async def execution(client: Client, workflow_id: str) -> tuple[WorkflowExecutionStatus | None, str] | None:
    """The workflow's status and type (a caller checks it is `api.WORKFLOW_TYPE`, a renewal journey),
    or None when there is no such workflow."""
    try:
        description = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            return None
        raise
    return description.status, description.workflow_type


@dataclass(frozen=True)
class JourneyState:
    """A workflow as `describe` shows it: its execution status, its type, and (a renewal journey's)
    stage search attribute, which the journey sets the moment it ends, before it finishes closing."""

    status: WorkflowExecutionStatus | None
    workflow_type: str
    stage: str | None

    @property
    def running(self) -> bool:
        return self.status is WorkflowExecutionStatus.RUNNING

    @property
    def ended(self) -> bool:
        """Over, or closing: its stage is final even if the workflow still runs its last activities."""
        return not self.running or self.stage in {stage.value for stage in api.TERMINAL_STAGES}


async def journey_state(client: Client, workflow_id: str) -> JourneyState | None:
    """The workflow's state, or None when there is no such workflow."""
    try:
        description = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            return None
        raise
    stage = description.typed_search_attributes.get(sa.JOURNEY_STAGE)
    return JourneyState(description.status, description.workflow_type, stage)


MAX_CANCEL_REASON = 300
_EMAIL_LIKE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


class CancelRefused(ValueError):
    """The cancellation cannot be asked for; the message says why (no personal data in it)."""


class NoSuchJourney(CancelRefused):
    """Temporal has no renewal journey of that id."""


def cancellation_reason(reason: str | None, by: str | None) -> str:
    """The request's reason as the history keeps it: "<reason> (by <who>)". Both are required; the
    reason must not quote a phone or an e-mail (it is stored in clear: say why, not who)."""
    text, actor = (reason or "").strip(), (by or "").strip()
    if not text:
        raise CancelRefused("a reason is required (--reason / reason): why the journey is cancelled")
    if not actor:
        raise CancelRefused("who cancels is required (--by / operator)")
    if len(text) > MAX_CANCEL_REASON or len(actor) > 100 or not (text + actor).isprintable():
        raise CancelRefused(
            f"the reason is at most {MAX_CANCEL_REASON} and the name 100 printable characters"
        )
    if _EMAIL_LIKE.search(text) or _quotes_phone(text):
        raise CancelRefused(
            "the reason quotes a phone or an e-mail: it is kept in the journey's history in clear, "
            "so say why without the client's contacts"
        )
    return f"{text} (by {actor})"


def _quotes_phone(text: str) -> bool:
    """A valid phone number anywhere in the text (a policy number or a date is none)."""
    return any(True for _ in phonenumbers.PhoneNumberMatcher(text, "RU"))


async def cancel_journey(client: Client, journey_id: str, reason: str) -> JourneyState:
    """Ask the running journey to cancel itself (Temporal's cancellation request, with `reason` from
    `cancellation_reason`). `CancelRefused` if there is no such journey or it is not running."""
    state = await journey_state(client, journey_id)
    if state is None or state.workflow_type != api.WORKFLOW_TYPE:
        raise NoSuchJourney(f"no journey {journey_id}")
    if not state.running:
        status = state.status.name.lower() if state.status else "closed"
        raise CancelRefused(f"journey {journey_id} has already ended ({status}, stage {state.stage})")
    await _handle(client, journey_id).cancel(reason=reason)
    return state
