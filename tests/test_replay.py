"""Replay stored journey histories against today's workflow code.

A change to RenewalJourney that would break journeys already running fails here; such a change
needs `workflow.patched()` and a new history recorded next to the old ones (tests/record_history.py).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from renewals.journey_api import JourneyInput
from worker import SANDBOX
from workflows.renewal import RenewalJourney

HISTORIES = sorted(Path(__file__).with_name("histories").glob("*.json"))


def test_there_are_histories_to_replay() -> None:
    names = {p.name for p in HISTORIES}
    # v1: before the `same-day-touchpoints-together` patch; v2: after it; v3: after the patches that
    # cancel sends in flight when a journey ends, keep the stage for suppressed touchpoints and set
    # `SendFailed`. Every one must keep replaying.
    assert names >= {
        f"{journey}_{v}.json" for journey in ("renewal_centre", "base_osago_paid") for v in ("v1", "v2", "v3")
    }


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_stored_history_replays_without_nondeterminism(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text(encoding="utf-8"))
    replayer = Replayer(
        workflows=[RenewalJourney], workflow_runner=SANDBOX, data_converter=pydantic_data_converter
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"


@workflow.defn(name="RenewalJourney")
class ChangedJourney:
    """A journey whose logic changed without `patched()`: it starts with a different command."""

    @workflow.run
    async def run(self, journey: JourneyInput) -> None:
        await workflow.sleep(timedelta(days=1))


async def test_replay_detects_a_changed_journey() -> None:
    """The check can fail: the stored history refuses a workflow that now does something else."""
    path = Path(__file__).with_name("histories") / "base_osago_paid_v1.json"
    history = WorkflowHistory.from_json("changed", path.read_text(encoding="utf-8"))
    replayer = Replayer(
        workflows=[ChangedJourney], workflow_runner=SANDBOX, data_converter=pydantic_data_converter
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is not None
