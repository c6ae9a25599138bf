"""Where a worker runs workflow activations: unsandboxed (production, `renewals simulate`) on its
event loop's thread, sandboxed (every other test, replay) in the SDK's thread pool with its deadlock
detector (workflows/runner.py says why)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.worker import PollerBehaviorSimpleMaximum, WorkflowRunner

from activities.renewal import JourneyActivities
from renewals.channels.factory import recording_channels
from tests.harness import TASK_QUEUE, journey_harness
from worker import build_worker
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


async def test_the_journey_worker_polls_the_normal_queue_more_than_once_at_a_time(tmp_path: Path) -> None:
    """New journeys' first tasks wait on the normal queue: with the SDK's default of five polls it
    gets one (a fifth), and a morning's intake runs its first tasks one round trip at a time."""
    async with journey_harness(tmp_path) as harness:
        activities = JourneyActivities(harness.db, recording_channels(harness.db))
        journey_worker = build_worker(harness.env.client, "polls", activities).workers[0]
        config = journey_worker.config()
    polls = config["workflow_task_poller_behavior"]
    assert isinstance(polls, PollerBehaviorSimpleMaximum)
    assert polls.maximum * config["nonsticky_to_sticky_poll_ratio"] >= 2, (polls, config)
