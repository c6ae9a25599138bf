"""Operating one application journey: validated status changes, an operator's answer to an
escalation, the query mid-flight (a clock paused at night), search attributes, and refusals."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
import pytest_asyncio
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from activities.sla import SlaActivities
from renewals.db.database import Database
from renewals.sendwindow import zone
from renewals.sla import search_attributes as sa
from renewals.sla.models import (
    ApplicationInput,
    ApplicationStatus,
    EscalationAnswer,
    EscalationStepName,
    Responsible,
    SlaStatus,
    StatusChange,
    application_workflow_id,
)
from renewals.sla.settings import SlaTargets
from starter.sla import (
    ApplicationNotFound,
    StatusRefused,
    change_status,
    register_sla_search_attributes,
    sla_worker,
    start_application,
)
from tests.sla_support import RecordingNotifier, time_skipping_env
from workflows.sla import PartnerApplication

TASK_QUEUE = "sla-operations"
PARTNER = "realty-9"
T = TypeVar("T")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[WorkflowEnvironment]:
    path: Path = tmp_path_factory.mktemp("sla-operations") / "sla.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.migrate()
    async for environment in time_skipping_env():
        await register_sla_search_attributes(environment.client)
        async with sla_worker(environment.client, TASK_QUEUE, SlaActivities(db, RecordingNotifier())):
            yield environment
    await db.dispose()


async def move_clock_to(env: WorkflowEnvironment, moscow_time: str) -> datetime:
    target = datetime.fromisoformat(f"{moscow_time}:00+03:00")
    now = await env.get_current_time()
    assert target > now, f"tests in this module must run in time order; the server is at {now}"
    await env.sleep(target - now)
    return target


async def eventually(probe: Callable[[], Awaitable[T | None]], timeout: float = 10.0) -> T:
    """Poll a query until the journey has processed what the server already delivered."""
    async with asyncio.timeout(timeout):
        while (value := await probe()) is None:
            await asyncio.sleep(0.02)
    return value


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
    assert [s.step.value for s in status.escalations][:3] == [
        "check_data_and_payment",
        "locate_blocker",
        "hand_over",
    ]
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
