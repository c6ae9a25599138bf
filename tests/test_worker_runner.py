"""Where a worker runs workflow activations: unsandboxed (production, `renewals simulate`) on its
event loop's thread, sandboxed (every other test, replay) in the SDK's thread pool with its deadlock
detector (workflows/runner.py says why)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.worker import WorkflowRunner

from tests.harness import TASK_QUEUE, journey_harness
from workflows.runner import SANDBOXED_RUNNER, UNSANDBOXED_RUNNER, runs_inline


@workflow.defn(name="ActivationThread", sandboxed=False)
class ActivationThread:
    """Answers the name of the thread its activation ran on (not deterministic: a test probe only)."""

    @workflow.run
    async def run(self) -> str:
        return threading.current_thread().name


@pytest.mark.parametrize(
    ("runner", "inline"),
    [(UNSANDBOXED_RUNNER, True), (SANDBOXED_RUNNER, False)],
    ids=["unsandboxed", "sandboxed"],
)
async def test_activations_run_on_the_event_loop_only_without_the_sandbox(
    tmp_path: Path, runner: WorkflowRunner, inline: bool
) -> None:
    assert runs_inline(runner) is inline
    async with journey_harness(tmp_path, runner=runner, workflows=[ActivationThread]) as harness:
        thread = await harness.env.client.execute_workflow(
            ActivationThread.run, id="probe", task_queue=TASK_QUEUE
        )
    loop_thread = threading.current_thread().name
    assert (thread == loop_thread) is inline, (thread, loop_thread)
