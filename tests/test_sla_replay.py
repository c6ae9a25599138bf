"""Replay the stored PartnerApplication histories against today's workflow code.

v1 was recorded before the `sla-v2` patch (warnings as notifications, snapshots after every step,
the urgent channel, the strict breach moment, the earlier process flag) and must keep replaying on
the old path; v2 after it. A new deliberate change is guarded by a new `workflow.patched()` id and
records `python -m tests.sla_support v3` next to these — never overwrite an old history.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from renewals.sla.models import ApplicationInput
from tests.sla_support import SLA_HISTORIES
from worker import SANDBOX
from workflows.sla import PartnerApplication

HISTORIES = sorted(SLA_HISTORIES.glob("*.json"))


def test_there_are_sla_histories() -> None:
    names = {p.name for p in HISTORIES}
    assert names >= {f"{journey}_{v}.json" for journey in ("repeated", "urgent") for v in ("v1", "v2")}


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_sla_history_replays_without_nondeterminism(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text(encoding="utf-8"))
    replayer = Replayer(
        workflows=[PartnerApplication], workflow_runner=SANDBOX, data_converter=pydantic_data_converter
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"


@workflow.defn(name="PartnerApplication")
class ChangedApplication:
    """A journey changed without `patched()`: it starts with a different command."""

    @workflow.run
    async def run(self, application: ApplicationInput) -> None:
        await workflow.sleep(timedelta(days=1))


async def test_sla_replay_detects_a_changed_journey() -> None:
    path = SLA_HISTORIES / "repeated_v1.json"
    history = WorkflowHistory.from_json("changed", path.read_text(encoding="utf-8"))
    replayer = Replayer(
        workflows=[ChangedApplication], workflow_runner=SANDBOX, data_converter=pydantic_data_converter
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is not None
