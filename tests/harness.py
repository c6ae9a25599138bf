"""A time-skipping Temporal environment with a real journey worker, for tests that drive a journey
by hand: start it at a chosen moment, skip time, signal, update, query."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import WorkflowRunner

from activities.renewal import JourneyActivities
from renewals.channels.base import Channels
from renewals.channels.factory import recording_channels
from renewals.channels.recording import DatabasePortal, RecordingMessages, ScriptedRobot
from renewals.db.database import Database
from renewals.journey_api import JourneyInput, JourneyStatus
from renewals.models import Channel, Policy, journey_id
from renewals.search_attributes import ALL
from renewals.sendwindow import zone
from renewals.temporal.runtime import cli_runtime
from renewals.temporal.setup import register_search_attributes
from starter.binaries import find_binary
from tests.keys import TEST_CONVERTER
from worker import build_worker
from workflows.renewal import RenewalJourney
from workflows.runner import SANDBOXED_RUNNER

TASK_QUEUE = "test-journeys"
MSK = zone("Europe/Moscow")
INTAKE = datetime(2027, 3, 1, 10, tzinfo=MSK)  # the default test policy ends Tue 20.04.27


async def local_dev_server() -> WorkflowEnvironment:
    """A real local Temporal (the `temporal` CLI's dev server, no UI) with every search attribute, the
    tests' encrypting converter and a runtime of its own: what the tests of whole processes and
    services run against (the journey tests use the time-skipping server). Shut it down after."""
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=find_binary("temporal"),
        search_attributes=list(ALL),
        data_converter=TEST_CONVERTER,
        runtime=cli_runtime(),
        ui=False,
    )


def msk(month: int, day: int, hour: int = 12, minute: int = 0) -> datetime:
    """A moment of 2027 in Moscow, where the test clients live."""
    return datetime(2027, month, day, hour, minute, tzinfo=MSK)


def channels_with(db: Database, robot: object = None, portal: object = None, sms: object = None) -> Channels:
    """The recording channels with one of them swapped for a test double."""
    messages = RecordingMessages(db)
    return Channels(
        {
            Channel.SMS: sms or messages,  # type: ignore[dict-item]
            Channel.EMAIL: messages,
            Channel.VK: messages,
            Channel.ROBOT_CALL: robot or ScriptedRobot(db),  # type: ignore[dict-item]
        },
        portal or DatabasePortal(db),  # type: ignore[arg-type]
    )


@dataclass
class Harness:
    env: WorkflowEnvironment
    db: Database

    async def skip_to(self, moment: datetime) -> None:
        """Advance the server clock to `moment`, running every timer due on the way."""
        delta = moment - await self.env.get_current_time()
        if delta.total_seconds() > 0:
            await self.env.sleep(delta)

    async def start(self, policy: Policy, at: datetime) -> WorkflowHandle[RenewalJourney, JourneyStatus]:
        await self.skip_to(at)
        return await self.env.client.start_workflow(
            RenewalJourney.run,
            JourneyInput(policy=policy),
            id=journey_id(policy.number, policy.expires_on),
            task_queue=TASK_QUEUE,
        )


@asynccontextmanager
async def journey_harness(
    tmp_path: Path,
    channels: Channels | None = None,
    db: Database | None = None,
    runner: WorkflowRunner = SANDBOXED_RUNNER,
    workflows: Sequence[type] = (),
) -> AsyncIterator[Harness]:
    """The journey worker (sandboxed, as every test's, unless `runner` says otherwise), with
    `workflows` registered besides the production ones."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find_binary("temporal-test-server"),
        data_converter=TEST_CONVERTER,
    )
    own_db = db is None
    database = db or Database(f"sqlite+aiosqlite:///{tmp_path}/journeys.db")
    try:
        await database.migrate()
        await register_search_attributes(env.client)
        activities = JourneyActivities(database, channels or recording_channels(database))
        async with build_worker(env.client, TASK_QUEUE, activities, workflows, fail_fast=True, runner=runner):
            yield Harness(env, database)
    finally:
        if own_db:
            await database.dispose()
        await env.shutdown()
