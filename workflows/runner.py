"""Temporal's workflow sandbox, as every worker (and replay test) runs this repository's workflows.

The pure libraries the domain uses inside workflows (calendar, phones, models) are loaded once,
outside the sandbox, instead of being re-imported for every workflow run.
"""

from __future__ import annotations

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

SANDBOXED_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules(
        "renewals", "holidays", "dateutil", "six", "phonenumbers", "pydantic", "pydantic_core"
    )
)
