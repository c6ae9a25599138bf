"""SimulateScenario: plays one `renewals simulate` scenario against the real RenewalJourney.

The driver sleeps until the scenario's intake time, starts the journey as a child with its real
workflow id, and sends each scripted event at its moment. All on the server's clock, so on the
time-skipping test server a thousand 45-day scenarios run side by side in seconds.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict
from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from renewals import journey_api as api

from workflows.renewal import RenewalJourney
from workflows.timing import sleep_until

SIMULATION_WORKFLOW_TYPE = "SimulateScenario"


class TimedEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    at: datetime
    event: api.JourneyEvent


class ScenarioRun(BaseModel):
    model_config = ConfigDict(frozen=True)

    journey_id: str
    start_at: datetime
    journey: api.JourneyInput
    events: list[TimedEvent]


@workflow.defn(name=SIMULATION_WORKFLOW_TYPE)
class SimulateScenario:
    @workflow.run
    async def run(self, scenario: ScenarioRun) -> api.JourneyStatus:
        await sleep_until(scenario.start_at, "until the scenario's intake")
        journey = await workflow.start_child_workflow(
            RenewalJourney.run, scenario.journey, id=scenario.journey_id
        )
        for timed in sorted(scenario.events, key=lambda e: e.at):
            await sleep_until(timed.at, timed.event.type.value)
            try:
                await journey.signal(RenewalJourney.on_event, timed.event)
            except ApplicationError:
                break  # the journey has already finished; later events have nowhere to go
        return await journey
