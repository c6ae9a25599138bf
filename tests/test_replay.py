"""Replay the stored history of each workflow type against today's workflow code.

A change that journeys already running would see (a different command, a different order) fails
here: it needs `workflow.patched()` and the old history kept next to a new one (docs/versioning.md,
tests/record_history.py). The check can fail: a workflow changed without a patch is refused.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from tests.record_history import HISTORIES, RECORDERS
from workflows.renewal import RenewalJourney
from workflows.runner import SANDBOXED_RUNNER
from workflows.sla import PartnerApplication

WORKFLOWS: dict[str, type] = {"RenewalJourney": RenewalJourney, "PartnerApplication": PartnerApplication}


def _history(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text(encoding="utf-8"))


async def _replay(workflow_class: type, path: Path) -> Exception | None:
    replayer = Replayer(
        workflows=[workflow_class], workflow_runner=SANDBOXED_RUNNER, data_converter=pydantic_data_converter
    )
    result = await replayer.replay_workflow(_history(path), raise_on_replay_failure=False)
    return result.replay_failure


@workflow.defn(name="RenewalJourney", sandboxed=False)
class ChangedJourney:
    """A journey whose logic changed without `patched()`: it starts with another command."""

    @workflow.run
    async def run(self, _: Any) -> None:
        await workflow.sleep(timedelta(days=1))


@workflow.defn(name="PartnerApplication", sandboxed=False)
class ChangedApplication:
    """An application journey changed the same way."""

    @workflow.run
    async def run(self, _: Any) -> None:
        await workflow.sleep(timedelta(days=1))


CHANGED: dict[str, type] = {"RenewalJourney": ChangedJourney, "PartnerApplication": ChangedApplication}


def test_every_workflow_type_has_a_recorder_and_a_history() -> None:
    assert set(RECORDERS) == set(WORKFLOWS)
    assert {path.stem.split(".")[0] for path in HISTORIES.glob("*.json")} == set(WORKFLOWS)


@pytest.mark.parametrize("workflow_type", sorted(WORKFLOWS))
async def test_stored_histories_replay_without_nondeterminism(workflow_type: str) -> None:
    paths = sorted(HISTORIES.glob(f"{workflow_type}*.json"))
    assert paths, f"no stored history of {workflow_type}"
    for path in paths:
        failure = await _replay(WORKFLOWS[workflow_type], path)
        assert failure is None, f"{path.name}: {failure}"


@pytest.mark.parametrize("workflow_type", sorted(WORKFLOWS))
async def test_replay_refuses_a_workflow_changed_without_a_patch(workflow_type: str) -> None:
    failure = await _replay(CHANGED[workflow_type], HISTORIES / f"{workflow_type}.json")
    assert failure is not None
