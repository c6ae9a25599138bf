"""Shared helpers of the SLA tests: a time-skipping environment, a notifier that remembers, and
`record_sla_history`, the one PartnerApplication history the replay test keeps."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import TypeVar

from temporalio.client import WorkflowHandle, WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.sla import EscalationNotice, SlaActivities
from renewals import search_attributes as sa
from renewals.db.database import Database
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
from renewals.sla.targets import SlaTargets
from renewals.temporal.setup import register_search_attributes
from starter.binaries import find_binary
from tests.keys import TEST_CONVERTER
from workflows.runner import SANDBOXED_RUNNER
from workflows.sla import PartnerApplication

T = TypeVar("T")
Journey = WorkflowHandle[PartnerApplication, ApplicationStatus]


class RecordingNotifier:
    def __init__(self) -> None:
        self.notices: list[EscalationNotice] = []

    async def notify(self, notice: EscalationNotice) -> None:
        self.notices.append(notice)


def start_time_skipping() -> Awaitable[WorkflowEnvironment]:
    return WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find_binary("temporal-test-server"), data_converter=TEST_CONVERTER
    )


async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    async with await start_time_skipping() as env:
        yield env


async def move_clock_to(env: WorkflowEnvironment, moscow_time: str) -> datetime:
    """Skip the server's clock forward to a Moscow time; it never goes back."""
    target = datetime.fromisoformat(f"{moscow_time}:00+03:00")
    now = await env.get_current_time()
    assert target > now, f"the clock only moves forward: the server is at {now}, past {target}"
    await env.sleep(target - now)
    return target


async def eventually(probe: Callable[[], Awaitable[T | None]], timeout: float = 10.0) -> T:
    """Poll a query until the journey has processed what the server already delivered."""
    async with asyncio.timeout(timeout):
        while (value := await probe()) is None:
            await asyncio.sleep(0.02)
    return value


async def query_until(handle: Journey, ready: Callable[[ApplicationStatus], bool]) -> ApplicationStatus:
    async def probe() -> ApplicationStatus | None:
        status = await handle.query(PartnerApplication.status)
        return status if ready(status) else None

    return await eventually(probe)


# ---- the stored history -------------------------------------------------------------------------

HISTORY_TASK_QUEUE = "sla-history"
HISTORY_APPLICATION = ApplicationInput(
    id="hist-sla",
    partner="realty-h",
    urgent=True,
    clocks=SlaTargets().clocks(),
    responsible=Responsible(client_contact="Анна", payment="Вера"),
    submitted_at=datetime.fromisoformat("2027-04-14T10:00:00+03:00"),  # a Wednesday
)
HISTORY_WORKFLOW_ID = application_workflow_id(HISTORY_APPLICATION.partner, HISTORY_APPLICATION.id)


async def record_sla_history(env: WorkflowEnvironment | None = None) -> WorkflowHistory:
    """Run one urgent application through every kind of command the journey gives, and return its
    history: warnings through the urgent line, three breaches (the urgent reaction's, then the
    calculation's and the issuance's, a repeat that raises the process flag), an operator's answer
    (update `record_answer`), answers by progress, status changes by update and by signal, a refused
    signal, snapshots, search attributes, the finish. On `env` (a time-skipping environment whose
    clock is before 2027-04-14 10:00 MSK), or on a fresh one."""
    if env is None:
        async with await start_time_skipping() as fresh:
            return await record_sla_history(fresh)
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite+aiosqlite:///{tmp}/sla.db")
        await db.migrate()
        try:
            await register_search_attributes(env.client, keys=sa.SLA)
            activities = SlaActivities(db, RecordingNotifier())
            async with Worker(
                env.client,
                task_queue=HISTORY_TASK_QUEUE,
                workflows=[PartnerApplication],
                activities=activities.all(),
                workflow_runner=SANDBOXED_RUNNER,
            ):
                handle = await _history_script(env)
                await handle.result()
                return await handle.fetch_history()
        finally:
            await db.dispose()


async def _history_script(env: WorkflowEnvironment) -> Journey:
    def change(status: SlaStatus) -> StatusChange:
        return StatusChange(status=status, by="Анна (cabinet)")

    def answers_awaited(status: ApplicationStatus) -> int:
        return sum(s.step is EscalationStepName.RECORD_ANSWER for s in status.escalations)

    await move_clock_to(env, "2027-04-14T10:00")
    handle = await env.client.start_workflow(
        PartnerApplication.run, HISTORY_APPLICATION, id=HISTORY_WORKFLOW_ID, task_queue=HISTORY_TASK_QUEUE
    )
    # 10:10 both warnings, 10:15 both clocks breach: steps 1–3, then both await an answer.
    await move_clock_to(env, "2027-04-14T10:30")
    await query_until(handle, lambda status: answers_awaited(status) == 2)
    answer = EscalationAnswer(clock="calculation", by="Ольга (operator)", text="расчёт у андеррайтера")
    await handle.execute_update(PartnerApplication.record_answer, answer)
    await move_clock_to(env, "2027-04-14T10:40")  # answers the urgent reaction's step 4 by progress
    await handle.execute_update(PartnerApplication.change_status, change(SlaStatus.CALCULATED))
    await move_clock_to(env, "2027-04-14T11:00")  # the issuance clock: warning 12:00, due 13:00
    await handle.signal(PartnerApplication.status_changed, change(SlaStatus.PAID))
    await handle.signal(PartnerApplication.status_changed, change(SlaStatus.CALCULATED))  # refused
    await move_clock_to(env, "2027-04-14T13:30")  # the repeated breach raises the process flag
    await query_until(handle, lambda status: status.process_flag)
    await handle.execute_update(PartnerApplication.change_status, change(SlaStatus.ISSUED))
    return handle
