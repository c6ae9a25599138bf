"""A journey started by `start_journey` gets its search attributes with the start request, so its
first workflow task sends no upsert (an event and a visibility update fewer per journey, on the
server that a morning's intake keeps busy); one started without them upserts them as before, and
both histories replay."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.worker import Replayer

from renewals import search_attributes as sa
from renewals.sendwindow import SendWindow
from renewals.temporal.journeys import start_journey
from tests.factories import policy
from tests.harness import INTAKE, TASK_QUEUE, journey_harness
from tests.keys import TEST_CONVERTER
from workflows.renewal import RenewalJourney
from workflows.runner import SANDBOXED_RUNNER

UPSERT = EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES


async def _asleep(handle: WorkflowHandle[Any, Any]) -> tuple[list[set[str]], dict[str, Any]]:
    """The attributes each of its upserts wrote once the first workflow task has run (a query waits
    for it), and the journey's attributes as the server holds them."""
    await handle.query(RenewalJourney.status)
    history = await handle.fetch_history()
    shown = (await handle.describe()).typed_search_attributes
    attributes = {key.name: shown.get(key) for key in sa.JOURNEY if shown.get(key) is not None}
    assert (
        await Replayer(
            workflows=[RenewalJourney], workflow_runner=SANDBOXED_RUNNER, data_converter=TEST_CONVERTER
        ).replay_workflow(history, raise_on_replay_failure=False)
    ).replay_failure is None
    upserts = [
        set(event.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields)
        for event in history.events
        if event.event_type == UPSERT
    ]
    return upserts, attributes


async def test_a_journey_started_with_its_attributes_upserts_none_of_them(tmp_path: Path) -> None:
    async with journey_harness(tmp_path) as h:
        await h.skip_to(INTAKE)
        given = policy("KASKO", number="SA-1", renewal_centre=True)
        started = await start_journey(h.env.client, given, TASK_QUEUE, SendWindow())
        events, attributes = await _asleep(started)
        agent_only = policy("OSAGO", number="SA-3", regional_centre=None)  # the attribute is ""
        agent_events, _ = await _asleep(
            await start_journey(h.env.client, agent_only, TASK_QUEUE, SendWindow())
        )
        plain = await h.start(policy("KASKO", number="SA-2", renewal_centre=True), INTAKE)
        plain_events, plain_attributes = await _asleep(plain)
    # (the SDK's own `TemporalChangeVersion` upsert, for the journey's patch, is not ours)
    journey = {key.name for key in sa.JOURNEY}
    assert not any(journey & written for written in [*events, *agent_events]), (events, agent_events)
    # started without them, the first task upserts them all
    assert [journey & written for written in plain_events if journey & written] == [journey - {"SendFailed"}]
    assert attributes == {**plain_attributes, "PolicyNumber": "SA-1"}
    assert plain_attributes["PolicyNumber"] == "SA-2" and plain_attributes["JourneyStage"] == "scheduled"
    assert set(attributes) == {key.name for key in sa.JOURNEY} - {"SendFailed"}
