"""Start a policy's renewal journey: deterministic id, search attributes and summaries for the UI.

A duplicate start attaches to the running journey (USE_EXISTING) and a finished term is never started
again (REJECT_DUPLICATE), so intake can be re-run as often as it likes.
"""

from __future__ import annotations

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy

from renewals.journey_api import JourneyInput, JourneyStatus
from renewals.models import Policy, journey_id
from renewals.rules import segment_of
from renewals.sendwindow import SendWindow
from renewals.templates import PRODUCT_NAMES, format_date
from workflows.renewal import RenewalJourney


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
    client: Client, policy: Policy, task_queue: str, window: SendWindow, attach: bool = True
) -> WorkflowHandle[RenewalJourney, JourneyStatus]:
    """Start the term's journey. `attach=False` raises `WorkflowAlreadyStartedError` instead of
    attaching when the term's journey already runs (intake wants to know, to sync it instead)."""
    return await client.start_workflow(
        RenewalJourney.run,
        JourneyInput(policy=policy, window=window),
        id=journey_id(policy.number, policy.expires_on),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING if attach else WorkflowIDConflictPolicy.FAIL,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        static_summary=summary(policy),
        static_details=details(policy),
    )
