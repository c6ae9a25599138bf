"""`renewals simulate SCENARIOS.json`: what will this client receive, and when?

Each scenario runs through the real RenewalJourney and its real activities, with recording channels
and an in-memory database, on the time-skipping test server, and the timelines are printed as JSON.
The input and output shapes are the public contract documented in docs/simulate.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import multiprocessing
import os
import tempfile
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, TypeAdapter, ValidationError, model_validator

from renewals.experiments.assignment import holdouts_for
from renewals.experiments.config import Experiment, overlapping
from renewals.intake.validate import contact_problems, past_expiry
from renewals.journey_api import EventType, Holdout, JourneyEvent, JourneyInput, JourneyStatus, RobotOutcome
from renewals.models import Policy, journey_id
from renewals.phones import to_e164
from renewals.settings import get_settings
from starter.commands import Commands
from starter.inputs import InputError, first_error, simulate_command

if TYPE_CHECKING:
    from workflows.simulation import ScenarioRun

TASK_QUEUE = "simulate"
PARALLEL_FROM = 50  # scenarios: below this, a second process costs more (its server's start) than it saves


class ScenarioError(InputError):
    """A malformed scenario: names the scenario and the field."""


class ScenarioEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: EventType
    day: int | None = Field(default=None, ge=-400, le=400)  # relative to expires_on, at `time` local
    time: dt.time = Field(default_factory=lambda: dt.time(12, 0))
    at: datetime | None = None

    @model_validator(mode="after")
    def _one_moment(self) -> ScenarioEvent:
        if (self.day is None) == (self.at is None):
            raise ValueError("give exactly one of 'day' or 'at'")
        if self.at is not None and self.at.tzinfo is None:
            raise ValueError("'at' needs a UTC offset")
        return self

    def moment(self, expires_on: date, tz: ZoneInfo) -> datetime:
        if self.at is not None:
            return self.at
        assert self.day is not None
        return datetime.combine(expires_on + timedelta(days=self.day), self.time, tzinfo=tz)


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    now: datetime
    policy: Policy
    events: list[ScenarioEvent] = Field(default_factory=list)
    robot: list[RobotOutcome] = Field(default_factory=list)
    # From the document's "experiments" block, as intake would assign them (never given per scenario).
    _holdouts: tuple[Holdout, ...] = PrivateAttr(default=())

    @property
    def holdouts(self) -> tuple[Holdout, ...]:
        return self._holdouts

    def held_out_by(self, experiments: list[Experiment]) -> Scenario:
        """This scenario with the holdouts the experiments give its client on its intake day."""
        today = self.now.astimezone(ZoneInfo(self.policy.client.timezone)).date()
        held = self.model_copy()
        held._holdouts = holdouts_for(self.policy, experiments, today)
        return held


def parse_scenarios(document: Any, real_now: datetime) -> list[Scenario]:
    """Validate every scenario; the first bad one raises ScenarioError naming its id and field."""
    if not isinstance(document, dict) or not isinstance(document.get("scenarios"), list):
        raise ScenarioError('input: expected {"scenarios": [...]}')
    experiments = _experiments(document.get("experiments", []))
    scenarios: list[Scenario] = []
    for index, raw in enumerate(document["scenarios"]):
        name = raw.get("id") if isinstance(raw, dict) and raw.get("id") else f"#{index + 1}"
        try:
            scenario = Scenario.model_validate(raw)
        except ValidationError as error:
            raise ScenarioError(f"scenario {name}: {first_error(error, root='')}") from None
        if scenario.now.tzinfo is None:
            raise ScenarioError(f"scenario {name}: now: needs a UTC offset")
        if scenario.now < real_now:
            raise ScenarioError(f"scenario {name}: now: {scenario.now.isoformat()} is in the past")
        scenario = _as_intake_takes_it(scenario, scenario.id).held_out_by(experiments)
        tz = ZoneInfo(scenario.policy.client.timezone)
        for position, event in enumerate(scenario.events):
            if event.moment(scenario.policy.expires_on, tz) < scenario.now:
                raise ScenarioError(
                    f"scenario {name}: events[{position}]: {event.type.value} happens before the intake (now)"
                )
        scenarios.append(scenario)
    repeated = [sid for sid, n in Counter(s.id for s in scenarios).items() if n > 1]
    if repeated:
        raise ScenarioError(f"scenario {repeated[0]}: id: used by more than one scenario")
    return scenarios


_EXPERIMENTS = TypeAdapter(list[Experiment])


def _experiments(raw: Any) -> list[Experiment]:
    """The optional "experiments" block: the items of RENEWALS_EXPERIMENTS (docs/experiments.md)."""
    try:
        experiments = _EXPERIMENTS.validate_python(raw)
    except ValidationError as error:
        raise ScenarioError(f"experiments: {first_error(error, root='')}") from None
    problem = overlapping(experiments)
    if problem:
        raise ScenarioError(f"experiments: {problem}")
    return experiments


def _as_intake_takes_it(scenario: Scenario, name: str) -> Scenario:
    """The scenario's policy refused as `renewals import` refuses a row — a client address that is
    not one, a term whose cover ended before the scenario's `now` — rather than run as a journey that
    only fails its sends or lapses at once; the phone in E.164 as intake stores it."""
    policy, client = scenario.policy, scenario.policy.client
    problems = contact_problems(client)
    if problems:
        field, reason = problems[0]
        raise ScenarioError(f"scenario {name}: policy.client.{field}: {reason}")
    today = scenario.now.astimezone(ZoneInfo(client.timezone)).date()
    past = past_expiry(policy.expires_on, today, f"the scenario's now is {today} in {client.timezone}")
    if past is not None:
        raise ScenarioError(f"scenario {name}: policy.expires_on: {past}")
    phone = to_e164(client.phone, russian=True)
    if phone == client.phone:
        return scenario
    fixed = policy.model_copy(update={"client": client.model_copy(update={"phone": phone})})
    return scenario.model_copy(update={"policy": fixed})


def _workflow_ids(scenarios: list[Scenario]) -> dict[str, str]:
    """The production journey id; scenarios that share a policy term get their scenario id appended."""
    ids = {s.id: journey_id(s.policy.number, s.policy.expires_on) for s in scenarios}
    shared = {wid for wid, n in Counter(ids.values()).items() if n > 1}
    return {sid: f"{wid}--{sid}" if wid in shared else wid for sid, wid in ids.items()}


def _runs(scenarios: list[Scenario], ids: dict[str, str]) -> list[ScenarioRun]:
    from workflows.simulation import ScenarioRun, TimedEvent

    window = get_settings().send_window()
    runs = []
    for scenario in scenarios:
        tz = ZoneInfo(scenario.policy.client.timezone)
        runs.append(
            ScenarioRun(
                journey_id=ids[scenario.id],
                start_at=scenario.now,
                journey=JourneyInput(policy=scenario.policy, window=window, holdouts=scenario.holdouts),
                events=[
                    TimedEvent(
                        at=event.moment(scenario.policy.expires_on, tz),
                        event=JourneyEvent(type=event.type, source="scenario"),
                    )
                    for event in scenario.events
                ],
            )
        )
    return runs


def render_result(scenario: Scenario, workflow_id: str, status: JourneyStatus) -> dict[str, Any]:
    tz = ZoneInfo(scenario.policy.client.timezone)
    return {
        "id": scenario.id,
        "workflow_id": workflow_id,
        "final_stage": status.stage.value,
        "timeline": [
            {
                "at": entry.at.astimezone(tz).replace(second=0, microsecond=0).isoformat(),
                "day": entry.day,
                "channel": entry.channel.value,
                "status": entry.status.value,
                "reason": entry.reason,
                "template": entry.template,
                "to": entry.to,
                "text": entry.text,
            }
            for entry in status.timeline
        ],
    }


async def simulate(scenarios: list[Scenario], processes: int | None = None) -> list[dict[str, Any]]:
    """Every scenario's result, in input order. Many scenarios are split over `processes` (default:
    one per core once there are enough to pay for a second server): each process has its own
    time-skipping server, worker and scratch database, as one process is bound to one core."""
    ids = _workflow_ids(scenarios)
    processes = processes or (min(os.cpu_count() or 1, 4) if len(scenarios) >= PARALLEL_FROM else 1)
    if processes <= 1:
        statuses = dict(await _run_scenarios(scenarios, ids))
    else:
        chunks = [scenarios[i::processes] for i in range(processes)]
        loop = asyncio.get_running_loop()
        with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
            parts = await asyncio.gather(*(loop.run_in_executor(pool, _run_chunk, c, ids) for c in chunks))
        statuses = {sid: status for part in parts for sid, status in part}
    return [render_result(s, ids[s.id], statuses[s.id]) for s in scenarios]


def _run_chunk(scenarios: list[Scenario], ids: dict[str, str]) -> list[tuple[str, JourneyStatus]]:
    """One process's share (runs in a `spawn`ed process)."""
    return asyncio.run(_run_scenarios(scenarios, ids))


async def _run_scenarios(scenarios: list[Scenario], ids: dict[str, str]) -> list[tuple[str, JourneyStatus]]:
    from temporalio.api.testservice.v1 import UnlockTimeSkippingRequest
    from temporalio.testing import WorkflowEnvironment

    from activities.renewal import JourneyActivities
    from renewals.channels.factory import recording_channels
    from renewals.channels.recording import ScriptedRobot
    from renewals.db.database import Database
    from renewals.encryption import settings_converter
    from renewals.temporal.runtime import cli_runtime
    from renewals.temporal.setup import register_search_attributes
    from starter.binaries import find_binary
    from worker import build_worker
    from workflows.runner import UNSANDBOXED_RUNNER
    from workflows.simulation import SimulateScenario

    server = find_binary("temporal-test-server")
    # Encrypted like production; without configured keys a random keyring that dies with the process.
    converter = settings_converter(get_settings(), ephemeral=True)
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=server, data_converter=converter, runtime=cli_runtime()
    )
    scratch = tempfile.TemporaryDirectory(prefix="renewals-simulate-")
    db = Database(f"sqlite+aiosqlite:///{scratch.name}/simulate.db")
    try:
        await register_search_attributes(env.client)
        await db.migrate()
        robot = ScriptedRobot(db, script={ids[s.id]: s.robot for s in scenarios})
        # Scenarios are independent what-ifs, often for the same client: no shared opt-out list.
        activities = JourneyActivities(db, recording_channels(db, robot), opt_outs_per_journey=True)
        # Unsandboxed like the production worker (workflows/runner.py): the sandboxed tests check them.
        async with build_worker(
            env.client,
            TASK_QUEUE,
            activities,
            [SimulateScenario],
            fail_fast=True,
            runner=UNSANDBOXED_RUNNER,
        ):
            with env.auto_time_skipping_disabled():
                handles = [
                    await env.client.start_workflow(
                        SimulateScenario.run, run, id=f"simulate-{run.journey_id}", task_queue=TASK_QUEUE
                    )
                    for run in _runs(scenarios, ids)
                ]
                await env.client.test_service.unlock_time_skipping(UnlockTimeSkippingRequest())
                statuses = [await handle.result() for handle in handles]
    finally:
        await db.dispose()
        await env.shutdown()
        scratch.cleanup()
    return [(s.id, status) for s, status in zip(scenarios, statuses, strict=True)]


def register(commands: Commands) -> None:
    simulate_ = commands.add_parser("simulate", help="run scenarios on the time-skipping server, print JSON")
    simulate_.add_argument("scenarios", help="SCENARIOS.json")
    simulate_.set_defaults(handler=_simulate_cli)


def _simulate_cli(args: argparse.Namespace) -> int:
    return asyncio.run(simulate_command(args.scenarios, parse_scenarios, simulate))
