"""Operating one application journey: validated status changes, an operator's answer to an
escalation, the query mid-flight (a clock paused at night and over a weekend), search attributes,
the snapshot of an open breached application in the weekly report, the `renewals sla submit /
status / answer` commands, and refusals (including moments the production calendar cannot count).

One time-skipping server for the module: the tests run in time order."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.sla import SlaActivities
from renewals import search_attributes as sa
from renewals.db.database import Database
from renewals.sendwindow import zone
from renewals.sla.models import (
    ApplicationInput,
    ApplicationStatus,
    EscalationAnswer,
    EscalationStepName,
    RejectedChange,
    Responsible,
    SlaStatus,
    StatusChange,
    application_workflow_id,
)
from renewals.sla.report import StatusStats, build_report, week_bounds
from renewals.sla.snapshots import load_applications
from renewals.sla.targets import SlaTargets
from starter.sla.commands import sla_command
from starter.sla.operations import ApplicationNotFound, StatusRefused, change_status, start_application
from starter.sla.simulate import register_sla_search_attributes, sla_worker
from tests.sla_support import RecordingNotifier, eventually, move_clock_to, query_until, time_skipping_env
from workflows.sla import PartnerApplication

TASK_QUEUE = "sla-operations"
PARTNER = "realty-9"


MSK = zone("Europe/Moscow")
NOTIFIER = RecordingNotifier()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def db(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Database]:
    path: Path = tmp_path_factory.mktemp("sla-operations") / "sla.db"
    database = Database(f"sqlite+aiosqlite:///{path}")
    await database.migrate()
    yield database
    await database.dispose()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def env(db: Database) -> AsyncIterator[WorkflowEnvironment]:
    async for environment in time_skipping_env():
        await register_sla_search_attributes(environment.client)
        async with sla_worker(environment.client, TASK_QUEUE, SlaActivities(db, NOTIFIER)):
            yield environment


async def start(
    env: WorkflowEnvironment, app_id: str, submitted_at: datetime
) -> WorkflowHandle[PartnerApplication, ApplicationStatus]:
    application = ApplicationInput(
        id=app_id,
        submitted_at=submitted_at,
        partner=PARTNER,
        clocks=SlaTargets().clocks(),
        responsible=Responsible(client_contact="Анна"),
    )
    workflow_id = await start_application(env.client, application, TASK_QUEUE)
    return env.client.get_workflow_handle_for(PartnerApplication.run, workflow_id)


def change(status: SlaStatus, reason: str | None = None) -> StatusChange:
    return StatusChange(status=status, by="Анна (cabinet)", reason=reason)


async def test_missing_application_is_refused_with_its_name(env: WorkflowEnvironment) -> None:
    with pytest.raises(ApplicationNotFound, match="application nope of partner realty-9: not found"):
        await change_status(env.client, PARTNER, "nope", change(SlaStatus.CALCULATED))


async def test_changes_are_validated_and_an_operator_answers_the_escalation(env: WorkflowEnvironment) -> None:
    submitted = await move_clock_to(env, "2027-06-02T10:00")  # Wednesday
    handle = await start(env, "ops-1", submitted)
    with pytest.raises(StatusRefused, match="submitted → issued: a policy is issued only after payment"):
        await change_status(env.client, PARTNER, "ops-1", change(SlaStatus.ISSUED))
    acknowledged = await change_status(
        env.client, PARTNER, "ops-1", change(SlaStatus.ACKNOWLEDGED, "на связи")
    )
    assert [p.status for p in acknowledged.periods] == [SlaStatus.SUBMITTED, SlaStatus.ACKNOWLEDGED]
    assert acknowledged.periods[-1].reason == "на связи" and acknowledged.responsible_now == "Анна"

    await env.sleep(timedelta(minutes=20))  # the calculation clock breaches at 10:15

    async def awaiting_answer() -> ApplicationStatus | None:
        status = await handle.query(PartnerApplication.status)
        last = status.escalations[-1] if status.escalations else None
        ready = last is not None and last.step is EscalationStepName.RECORD_ANSWER and last.at is None
        return status if ready else None

    status = await eventually(awaiting_answer)
    assert [s.step.value for s in status.escalations][:4] == [
        "warning",  # at 10:10, to the person responsible for the stage
        "check_data_and_payment",
        "locate_blocker",
        "hand_over",
    ]
    warning = status.escalations[0]
    assert warning.channel == "responsible" and warning.finding is not None
    assert warning.finding.startswith("warned Анна via responsible: warning: application ops-1")
    assert any(n.kind == "warning" and n.to == "Анна" for n in NOTIFIER.notices)
    assert status.clocks[0].breached and status.breaches == 1
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(
            PartnerApplication.record_answer, EscalationAnswer(clock="issuance", by="Оператор", text="?")
        )
    assert "no escalation of clock 'issuance' awaits an answer" in str(refused.value.cause)
    answered = await handle.execute_update(
        PartnerApplication.record_answer,
        EscalationAnswer(clock="calculation", by="Оператор", text="расчёт будет к 10:40"),
    )
    step = answered.escalations[-1]
    assert step.step is EscalationStepName.RECORD_ANSWER and step.finding == "Оператор: расчёт будет к 10:40"
    assert step.at is not None and step.at.astimezone(zone("Europe/Moscow")).strftime("%H:%M") == "10:20"

    described = await handle.describe()
    attributes = described.typed_search_attributes
    assert attributes.get(sa.SLA_BREACHED) is True
    assert attributes.get(sa.SLA_PARTNER) == PARTNER
    assert attributes.get(sa.SLA_STATUS) == "acknowledged"
    assert attributes.get(sa.SLA_URGENT) is False

    await change_status(env.client, PARTNER, "ops-1", change(SlaStatus.CALCULATED))
    with pytest.raises(StatusRefused, match="calculated → submitted goes backwards"):
        await change_status(env.client, PARTNER, "ops-1", change(SlaStatus.SUBMITTED))
    await handle.signal(PartnerApplication.status_changed, change(SlaStatus.ISSUED))

    async def rejected() -> ApplicationStatus | None:
        status = await handle.query(PartnerApplication.status)
        return status if status.rejected else None

    assert "only after payment" in (await eventually(rejected)).rejected[0].reason
    await change_status(env.client, PARTNER, "ops-1", change(SlaStatus.CANCELLED, "клиент передумал"))
    final = await handle.result()
    assert final.status is SlaStatus.CANCELLED and final.finished
    with pytest.raises(StatusRefused, match="its journey has finished"):
        await change_status(env.client, PARTNER, "ops-1", change(SlaStatus.PAID))


async def test_query_shows_the_clock_paused_at_night(env: WorkflowEnvironment) -> None:
    submitted = await move_clock_to(env, "2027-06-02T17:55")
    handle = await start(env, "ops-2", submitted)
    assert handle.id == application_workflow_id(PARTNER, "ops-2")
    again = await start(env, "ops-2", submitted)  # a repeated start attaches to the running journey
    assert (await again.describe()).run_id == (await handle.describe()).run_id
    await env.sleep(timedelta(hours=1))
    status = await handle.query(PartnerApplication.status, await env.get_current_time())
    calculation = status.clocks[0]
    assert (calculation.paused, calculation.elapsed_seconds, calculation.remaining_seconds) == (
        True,
        300,
        600,
    )
    assert not calculation.breached and status.escalations == []
    assert status.time_in_status == {"submitted": 300}
    await change_status(env.client, PARTNER, "ops-2", change(SlaStatus.CANCELLED))
    assert (await handle.result()).status is SlaStatus.CANCELLED


def awaiting(clock: str) -> Callable[[ApplicationStatus], bool]:
    def check(status: ApplicationStatus) -> bool:
        return any(
            s.clock == clock and s.step is EscalationStepName.RECORD_ANSWER and s.at is None
            for s in status.escalations
        )

    return check


async def test_query_shows_the_clock_paused_over_a_weekend(env: WorkflowEnvironment) -> None:
    submitted = await move_clock_to(env, "2027-06-04T17:55")  # Friday: 5 business minutes left today
    handle = await start(env, "ops-3", submitted)
    seen = []
    for moment in ("2027-06-04T23:00", "2027-06-05T12:00", "2027-06-06T20:00", "2027-06-07T08:59"):
        now = await move_clock_to(env, moment)
        calculation = (await handle.query(PartnerApplication.status, now)).clocks[0]
        seen.append((calculation.paused, calculation.elapsed_seconds, calculation.remaining_seconds))
    assert seen == [(True, 300, 600)] * 4  # nothing moves from Friday 18:00 to Monday 09:00
    status = await handle.query(PartnerApplication.status, await env.get_current_time())
    assert not status.clocks[0].breached and status.escalations == []
    assert status.time_in_status == {"submitted": 300}
    await change_status(env.client, PARTNER, "ops-3", change(SlaStatus.CANCELLED))
    assert (await handle.result()).status is SlaStatus.CANCELLED


async def test_an_open_breached_application_is_in_the_weekly_report(
    env: WorkflowEnvironment, db: Database
) -> None:
    submitted = await move_clock_to(env, "2027-06-07T10:00")  # Monday, ISO week 2027-W23
    handle = await start(env, "ops-4", submitted)
    await move_clock_to(env, "2027-06-07T10:30")  # breached at 10:15, still submitted
    week = "2027-W23"
    start_, end = week_bounds(week, "Europe/Moscow")

    async def stored() -> ApplicationStatus | None:
        loaded = [a for a in await load_applications(db, start_, end, PARTNER) if a.id == "ops-4"]
        done = loaded and any(s.step is EscalationStepName.HAND_OVER for s in loaded[0].escalations)
        return loaded[0] if done else None

    snapshot = await eventually(stored)  # stored after the breach's steps, not only at submission
    assert snapshot.status is SlaStatus.SUBMITTED and not snapshot.finished and snapshot.breaches == 1
    report = build_report(
        [snapshot], week, "Europe/Moscow", PARTNER, now=datetime(2027, 6, 7, 11, tzinfo=MSK)
    )
    (group,) = report.groups
    assert (group.applications, group.within_sla, group.escalations) == (1, 0, 1)
    assert group.delay_reasons == {"calculation": 1}
    # The open status counts up to the cut-off (11:00), not up to the snapshot (≈ 10:15).
    assert group.statuses == [
        StatusStats(status=SlaStatus.SUBMITTED, applications=1, median_seconds=3600, p90_seconds=3600)
    ]
    await change_status(env.client, PARTNER, "ops-4", change(SlaStatus.CANCELLED))
    await handle.result()


async def test_operator_answer_then_the_repeated_breach_flag(
    env: WorkflowEnvironment, capsys: pytest.CaptureFixture[str]
) -> None:
    submitted = await move_clock_to(env, "2027-06-08T10:00")  # Tuesday
    handle = await start(env, "ops-5", submitted)
    await move_clock_to(env, "2027-06-08T10:20")  # the calculation clock breached at 10:15
    await query_until(handle, awaiting("calculation"))
    answer = ["answer", "ops-5", "--partner", PARTNER, "--who", "Оператор", "--answer", "расчёт к 10:30"]
    assert await sla_command(answer, env.client) == 0
    answered = ApplicationStatus.model_validate_json(capsys.readouterr().out)
    step = next(s for s in answered.escalations if s.step is EscalationStepName.RECORD_ANSWER)
    assert step.finding == "Оператор: расчёт к 10:30" and step.at is not None
    assert step.at.astimezone(MSK).strftime("%H:%M") == "10:20" and not answered.process_flag
    assert await sla_command(answer, env.client) == 2  # nothing awaits an answer any more
    assert capsys.readouterr().err.strip() == "application ops-5: no escalation awaits an answer"

    moved = ["status", handle.id, "--to", "calculated", "--by", "Борис", "--reason", "тариф уточнён"]
    assert await sla_command(moved, env.client) == 0
    capsys.readouterr()
    await change_status(env.client, PARTNER, "ops-5", change(SlaStatus.PAID))  # issuance due 12:20
    await move_clock_to(env, "2027-06-08T12:30")
    flagged = await query_until(handle, lambda s: s.process_flag)
    # The flag is up although the second breach's step 4 is still awaited.
    assert awaiting("issuance")(flagged)
    assert [(s.clock, s.step.value) for s in flagged.escalations if s.clock == "issuance"] == [
        ("issuance", "warning"),
        ("issuance", "check_data_and_payment"),
        ("issuance", "locate_blocker"),
        ("issuance", "hand_over"),
        ("issuance", "record_answer"),
        ("issuance", "raise_process_flag"),
    ]
    assert any(n.kind == "process_flag" and "breach #2" in n.text for n in NOTIFIER.notices)
    reply = ["answer", handle.id, "--who", "Оператор", "--answer", "выпуск через 10 минут"]
    assert await sla_command(reply, env.client) == 0  # the oldest awaiting: the issuance one
    capsys.readouterr()
    assert await sla_command(["status", handle.id], env.client) == 0
    shown = ApplicationStatus.model_validate_json(capsys.readouterr().out)
    issuance_answer = next(
        s for s in shown.escalations if s.clock == "issuance" and s.step is EscalationStepName.RECORD_ANSWER
    )
    assert issuance_answer.finding == "Оператор: выпуск через 10 минут" and shown.process_flag
    await change_status(env.client, PARTNER, "ops-5", change(SlaStatus.ISSUED))
    final = await handle.result()
    assert final.status is SlaStatus.ISSUED and final.breaches == 2


async def test_submit_and_status_from_the_command_line(
    env: WorkflowEnvironment, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await move_clock_to(env, "2027-06-09T10:00")
    document = {"id": "ops-6", "partner": PARTNER, "urgent": True, "responsible": {"client_contact": "Анна"}}
    path = tmp_path / "application.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    assert await sla_command(["submit", str(path), "--task-queue", TASK_QUEUE], env.client) == 0
    submitted = json.loads(capsys.readouterr().out)
    assert submitted == {
        "workflow_id": application_workflow_id(PARTNER, "ops-6"),
        "id": "ops-6",
        "partner": PARTNER,
    }
    assert await sla_command(["status", submitted["workflow_id"]], env.client) == 0
    status = ApplicationStatus.model_validate_json(capsys.readouterr().out)
    assert status.urgent and [c.name for c in status.clocks] == ["calculation", "urgent_reaction"]
    flags = ["submit", "--id", "ops-7", "--partner", PARTNER, "--payment", "Вера", "--task-queue", TASK_QUEUE]
    assert await sla_command(flags, env.client) == 0
    capsys.readouterr()
    assert await sla_command(["status", "ops-7", "--partner", PARTNER], env.client) == 0
    assert not ApplicationStatus.model_validate_json(capsys.readouterr().out).urgent

    refusals = [
        (["status", "nope"], "application nope: give --partner P, or the workflow id"),
        (["status", "nope", "--partner", PARTNER], "application nope of partner realty-9: not found"),
        (["submit", "--partner", PARTNER], "application (no id): id: Field required"),
        (["submit", str(path), "--id", "x"], "submit: give FILE or the flags"),
        (
            ["submit", "--id", "old", "--partner", PARTNER, "--submitted-at", "2019-12-30T10:00:00+03:00"],
            "application old: submitted_at: the support calendar cannot count 2019-12-30T10:00:00+03:00",
        ),
        (["status", "ops-7", "--partner", PARTNER, "--to", "paid"], "status: --to needs --by"),
    ]
    for argv, message in refusals:
        assert await sla_command(argv, env.client) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and err.startswith(message), err
    for app_id in ("ops-6", "ops-7"):
        await change_status(env.client, PARTNER, app_id, change(SlaStatus.CANCELLED))


async def test_moments_the_calendar_cannot_count_are_refused_not_crashed(env: WorkflowEnvironment) -> None:
    """Last in the module: it moves the server to the production calendar's last year."""
    submitted = await move_clock_to(env, "2040-12-31T10:00")
    handle = await start(env, "ops-8", submitted)
    await move_clock_to(env, "2040-12-31T17:00")
    # Paid at 17:00: the issuance clock's 120 business minutes would run into 2041.
    with pytest.raises(StatusRefused, match="2041-01-01 is outside the production calendar's years"):
        await change_status(env.client, PARTNER, "ops-8", change(SlaStatus.PAID))
    await handle.signal(PartnerApplication.status_changed, change(SlaStatus.PAID))
    rejected: list[RejectedChange] = (await query_until(handle, lambda s: bool(s.rejected))).rejected
    assert rejected[0].status == "paid" and "the support calendar cannot count" in rejected[0].reason
    await change_status(env.client, PARTNER, "ops-8", change(SlaStatus.CANCELLED))
    assert (await handle.result()).status is SlaStatus.CANCELLED  # the journey kept working

    too_early = ApplicationInput(
        id="ops-9",
        partner=PARTNER,
        submitted_at=datetime(2019, 12, 30, 10, tzinfo=MSK),
        clocks=SlaTargets().clocks(),
    )
    workflow_id = await start_application(env.client, too_early, TASK_QUEUE)
    with pytest.raises(WorkflowFailureError) as failed:
        await env.client.get_workflow_handle(workflow_id).result()
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "CalendarNotCovered"
    assert "the support calendar cannot count 2019-12-30" in str(cause)
