"""How workers run this repository's workflows: in Temporal's sandbox (every test, replay test and
`RENEWALS_WORKFLOW_SANDBOX=true`), or without it (the production default, `renewals simulate`).

The sandbox re-imports the workflow modules for every workflow run it creates and swaps the
interpreter's modules and builtins around every activation. Measured in the morning burst
(docs/performance.md, 2026-12-02): with it, 38 % of the worker's time was the sandbox's imports and the
drain was 8.6 journeys/s; without it, 18.5/s with the same cache. The sandbox is a development-time
net for non-determinism, and every workflow test and the replay test run under it, so the code a
worker runs unsandboxed is the code the sandbox has checked. The pure libraries the domain uses
inside workflows (calendar, phones, models) are passed through: loaded once, not per run.
"""

from __future__ import annotations

from temporalio.worker import UnsandboxedWorkflowRunner, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

SANDBOXED_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules(
        "renewals", "holidays", "dateutil", "six", "phonenumbers", "pydantic", "pydantic_core"
    )
)
UNSANDBOXED_RUNNER = UnsandboxedWorkflowRunner()


def workflow_runner(sandboxed: bool) -> WorkflowRunner:
    """The runner a worker uses: the sandbox when asked (`RENEWALS_WORKFLOW_SANDBOX`), else none."""
    return SANDBOXED_RUNNER if sandboxed else UNSANDBOXED_RUNNER
