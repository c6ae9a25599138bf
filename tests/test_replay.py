"""Replay the stored history of each workflow type against today's workflow code, through the codec
(the histories are encrypted with the fixed test key, tests/keys.py).

A change that journeys already running would see (a different command, a different order) fails
here: it needs `workflow.patched()` and the old history kept next to a new one (docs/versioning.md,
tests/record_history.py). The check can fail: a workflow changed without a patch is refused.
"""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.converter import DataConverter
from temporalio.converter import default as default_converter
from temporalio.worker import Replayer

from renewals.encryption import UnknownKey, data_converter
from tests.keys import OLD_TEST_KEYRING, TEST_CONVERTER, TEST_KEYRING, reencrypted
from tests.record_history import HISTORIES, RECORDERS
from workflows.renewal import RenewalJourney
from workflows.runner import SANDBOXED_RUNNER
from workflows.sla import PartnerApplication

WORKFLOWS: dict[str, type] = {"RenewalJourney": RenewalJourney, "PartnerApplication": PartnerApplication}


def _history(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text(encoding="utf-8"))


async def _replay(
    workflow_class: type, history: Path | WorkflowHistory, converter: DataConverter = TEST_CONVERTER
) -> Exception | None:
    replayer = Replayer(
        workflows=[workflow_class], workflow_runner=SANDBOXED_RUNNER, data_converter=converter
    )
    if isinstance(history, Path):
        history = _history(history)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
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


async def test_a_history_under_a_rotated_out_key_replays_while_that_key_is_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Journeys started before a key rotation replay as long as the old key stays configured (after the
    current one); without it, the replay fails, and the worker's log names the missing key id."""
    stored = _history(HISTORIES / "RenewalJourney.json")
    old_history = await reencrypted(stored, TEST_KEYRING, OLD_TEST_KEYRING)
    rotated = OLD_TEST_KEYRING.rotated(TEST_KEYRING.current, TEST_KEYRING.key(TEST_KEYRING.current))
    assert rotated.current == TEST_KEYRING.current  # new payloads: the new key; the old one decrypts
    assert await _replay(RenewalJourney, old_history, data_converter(rotated)) is None

    failure = await _replay(RenewalJourney, old_history, TEST_CONVERTER)
    assert failure is not None and 'r#type: "UnknownKey"' in str(failure)
    missing = f"payload encrypted with key id {OLD_TEST_KEYRING.current!r}, which is not configured"
    refusals = [r.exc_info[1] for r in caplog.records if r.exc_info and isinstance(r.exc_info[1], UnknownKey)]
    assert refusals and missing in str(refusals[0])


async def test_a_history_written_before_encryption_still_replays_through_the_codec() -> None:
    stored = _history(HISTORIES / "RenewalJourney.json")
    clear = await reencrypted(stored, TEST_KEYRING, None)
    assert await _replay(RenewalJourney, clear) is None


async def test_a_journey_upserts_its_stage_only_when_it_changes(tmp_path: Path) -> None:
    """Today's code (patch `stage-upserts-on-change`): in the 45-day renewal-centre journey no stage
    upsert repeats the stage the attribute holds, where the history recorded before the patch wrote
    it on every touchpoint's "next" too. (The start and a policy update upsert every attribute, the
    stage among them: those are not stage upserts and are left out.)"""
    from tests.record_history import record_renewal_journey

    def stages(history: WorkflowHistory) -> list[str]:
        written = []
        for event in history.events:
            fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
            if set(fields) == {"JourneyStage"}:  # a stage upsert (publish), not all attributes
                written.append(default_converter().payload_converter.from_payload(fields["JourneyStage"]))
        return written

    now = stages(await record_renewal_journey(tmp_path))
    assert now and all(a != b for a, b in pairwise(now)), now
    before = stages(_history(HISTORIES / "RenewalJourney.stage-upserts-on-change.json"))
    assert any(a == b for a, b in pairwise(before))  # what the patch removed
    # the same stages in the same order, less the start's `scheduled` (now written with every attribute)
    assert before[0] == "scheduled" and list(dict.fromkeys(before))[1:] == list(dict.fromkeys(now))
