"""The daily intake: the Schedule's DailyIntake workflow on the time-skipping server starts due journeys
once, passes policy changes and cancellations on to running ones; the Schedule installs idempotently,
also through the `renewals schedule install` command, and a triggered run on the dev server starts the
due journeys."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from temporalio.client import Client, ScheduleActionExecutionStartWorkflow, WorkflowExecutionStatus
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.intake import IntakeActivities
from activities.renewal import JourneyActivities
from renewals.channels.factory import recording_channels
from renewals.db.database import Database
from renewals.intake.daily_run import IntakeRequest, IntakeResult
from renewals.intake.portfolio_store import store_policy, upsert_policy
from renewals.intake.schedule import SCHEDULE_ID, install_schedule
from renewals.journey_api import JourneyStatus, Stage
from renewals.models import Policy, journey_id
from renewals.sendwindow import SendWindow, zone
from renewals.temporal.setup import register_search_attributes
from starter.binaries import find_binary
from starter.cli import main as cli_main
from tests.factories import policy
from tests.harness import local_dev_server
from tests.keys import TEST_CONVERTER
from worker import build_worker
from workflows.intake import DailyIntake

QUEUE = "intake-test"


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    environment = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find_binary("temporal-test-server"), data_converter=TEST_CONVERTER
    )
    await register_search_attributes(environment.client)
    yield environment
    await environment.shutdown()


async def run_intake(client: Client, run: int) -> IntakeResult:
    return await client.execute_workflow(
        DailyIntake.run,
        IntakeRequest(horizon_days=60, task_queue=QUEUE),
        id=f"intake-run-{run}",
        task_queue=QUEUE,
    )


async def status(client: Client, p: Policy) -> JourneyStatus:
    handle = client.get_workflow_handle(journey_id(p.number, p.expires_on))
    result: JourneyStatus = await handle.query("status", result_type=JourneyStatus)
    return result


async def test_daily_intake_starts_due_journeys_once_and_passes_changes_on(
    env: WorkflowEnvironment, tmp_path: Path
) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/intake.db")
    await db.migrate()
    today = (await env.get_current_time()).astimezone(zone("Europe/Moscow")).date()
    due = [policy("KASKO", number=f"DUE-{n}", expires_on=today + timedelta(days=20 + n)) for n in range(3)]
    later = policy("KASKO", number="LATER-1", expires_on=today + timedelta(days=61))
    cancelled = policy("KASKO", number="CANCELLED-1", expires_on=today + timedelta(days=30))
    for p in [*due, later]:
        await upsert_policy(db, p)
    await store_policy(db, cancelled, cancelled=True)
    activities = JourneyActivities(db, recording_channels(db))
    intake = IntakeActivities(env.client, db, SendWindow())
    try:
        with env.auto_time_skipping_disabled():  # keep the started journeys asleep
            async with build_worker(
                env.client, QUEUE, activities, extra_activities=intake.all(), fail_fast=True
            ):
                first = await run_intake(env.client, 1)
                assert first.today == today.isoformat()
                assert first.counts == {"started": 3, "cancelled, not started": 1}

                second = await run_intake(env.client, 2)
                assert second.counts == {"already running": 3, "cancelled, not started": 1}

                moved = due[0].model_copy(
                    update={"client": due[0].client.model_copy(update={"phone": "+79160000000"})}
                )
                await store_policy(db, moved, cancelled=False)
                await store_policy(db, due[1], cancelled=True)
                third = await run_intake(env.client, 3)
                assert third.counts == {
                    "updated": 1,
                    "cancelled": 1,
                    "already running": 1,
                    "cancelled, not started": 1,
                }
                assert "policy_updated" in [e.type for e in (await status(env.client, due[0])).events]
                assert (await status(env.client, due[1])).stage is Stage.CANCELLED

                fourth = await run_intake(env.client, 4)  # nothing new: nothing sent twice
                assert fourth.counts == {
                    "already running": 2,
                    "already finished": 1,
                    "cancelled, not started": 1,
                }
                beyond = env.client.get_workflow_handle(journey_id(later.number, later.expires_on))
                with pytest.raises(RPCError):  # the policy beyond the horizon has no journey at all
                    await beyond.describe()
    finally:
        await db.dispose()


@pytest.fixture(scope="module")
async def dev_server() -> AsyncIterator[WorkflowEnvironment]:
    environment = await local_dev_server()
    yield environment
    await environment.shutdown()


async def test_schedule_install_creates_then_updates(dev_server: WorkflowEnvironment) -> None:
    client = dev_server.client
    request = IntakeRequest(horizon_days=60, task_queue=QUEUE)
    assert await install_schedule(client, request, hour=7) == "created"
    assert (
        await install_schedule(client, request.model_copy(update={"horizon_days": 45}), hour=6) == "updated"
    )
    description = await client.get_schedule_handle(SCHEDULE_ID).describe()
    [calendar] = description.schedule.spec.calendars
    assert [r.start for r in calendar.hour] == [6]
    assert description.schedule.spec.time_zone_name == "Europe/Moscow"
    action = description.schedule.action
    assert getattr(action, "workflow", None) == "DailyIntake"


async def test_cli_installs_the_schedule_and_its_triggered_run_starts_journeys(
    dev_server: WorkflowEnvironment,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    client = dev_server.client
    database_url = f"sqlite+aiosqlite:///{tmp_path}/scheduled.db"
    monkeypatch.setenv("RENEWALS_TEMPORAL_ADDRESS", client.service_client.config.target_host)
    monkeypatch.setenv("RENEWALS_DATABASE_URL", database_url)
    monkeypatch.setenv("RENEWALS_TASK_QUEUE", QUEUE)
    argv = ["schedule", "install", "--horizon-days", "30", "--at", "06:30", "--timezone", "Asia/Novosibirsk"]
    with pytest.raises(SystemExit) as exit_:  # the `renewals` entry point runs its own event loop
        await asyncio.to_thread(cli_main, argv)
    assert exit_.value.code == 0
    assert "DailyIntake every day at 06:30 Asia/Novosibirsk, horizon 30 days" in capsys.readouterr().out
    schedule = client.get_schedule_handle(SCHEDULE_ID)
    spec = (await schedule.describe()).schedule.spec
    assert ([r.start for r in spec.calendars[0].hour], spec.time_zone_name) == ([6], "Asia/Novosibirsk")

    db = Database(database_url)
    await db.migrate()
    today = date.today()
    due = [policy("KASKO", number=f"SCHED-{n}", expires_on=today + timedelta(days=20 + n)) for n in range(2)]
    later = policy("KASKO", number="SCHED-LATER", expires_on=today + timedelta(days=45))  # beyond 30 days
    for p in [*due, later]:
        await upsert_policy(db, p)
    intake = IntakeActivities(client, db, SendWindow())
    try:
        async with build_worker(
            client, QUEUE, JourneyActivities(db, recording_channels(db)), extra_activities=intake.all()
        ):
            await schedule.trigger()
            run_id = None
            for _ in range(100):  # the schedule's run shows up in its recent actions
                actions = (await schedule.describe()).info.recent_actions
                if actions and isinstance(actions[-1].action, ScheduleActionExecutionStartWorkflow):
                    run_id = actions[-1].action.workflow_id
                    break
                await asyncio.sleep(0.1)
            assert run_id is not None and run_id.startswith(SCHEDULE_ID)
            run = client.get_workflow_handle(run_id, result_type=IntakeResult)
            result = await run.result()
            assert (await run.describe()).workflow_type == "DailyIntake"
            assert result.counts == {"started": 2}
            for p in due:
                journey = await client.get_workflow_handle(journey_id(p.number, p.expires_on)).describe()
                assert journey.status is WorkflowExecutionStatus.RUNNING
            beyond = client.get_workflow_handle(journey_id(later.number, later.expires_on))
            with pytest.raises(RPCError):
                await beyond.describe()
    finally:
        await db.dispose()
