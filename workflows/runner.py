"""How workers run this repository's workflows: in Temporal's sandbox (every test, replay test and
`RENEWALS_WORKFLOW_SANDBOX=true`), or without it (the production default, `renewals simulate`).

The sandbox re-imports the workflow modules for every workflow run it creates and swaps the
interpreter's modules and builtins around every activation. Measured in the morning burst
(docs/performance.md, 2026-12-02): with it, 38 % of the worker's time was the sandbox's imports and the
drain was 8.6 journeys/s; without it, 18.5/s with the same cache. The sandbox is a development-time
net for non-determinism, and every workflow test and the replay test run under it, so the code a
worker runs unsandboxed is the code the sandbox has checked. The pure libraries the domain uses
inside workflows (calendar, phones, models) are passed through: loaded once, not per run.

Unsandboxed, activations also run on the worker's event loop rather than in the SDK's thread pool
(`runs_inline`): the hop to a thread and back for every activation (a pool submit, a wake-up of the
loop through its self-pipe, the GIL passed twice) was ≈ 7 % of the worker's main thread in the
burst's profile and ≈ 7 % of `renewals simulate`'s wall time (docs/performance.md, fifth round).
What that gives up is the SDK's deadlock detector (an activation that blocks for 2 s fails its task),
which the sandboxed tests keep: a workflow that blocks is caught there, as non-determinism is.
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


def runs_inline(runner: WorkflowRunner) -> bool:
    """Whether a worker with this runner runs activations on its event loop (the SDK's `debug_mode`,
    which does nothing else for an unsandboxed runner than that, drop the 2 s deadlock timeout and
    install a `breakpoint()` hook for workflow code): only without the sandbox."""
    return isinstance(runner, UnsandboxedWorkflowRunner)


def workflow_runner(sandboxed: bool) -> WorkflowRunner:
    """The runner a worker uses: the sandbox when asked (`RENEWALS_WORKFLOW_SANDBOX`), else none."""
    return SANDBOXED_RUNNER if sandboxed else UNSANDBOXED_RUNNER
