"""What ends with a journey: its operator tasks close with the journey's outcome as the reason (paid,
renewed, opted out, policy cancelled, lapsed), the workbench lists only open tasks of running
journeys and refuses an outcome for a closed one; a cancellation request (the Temporal UI's «Request
Cancellation», `renewals cancel`, `POST /operators/journeys/cancel`) is handled by the journey — it
ends as `cancelled` with the reason, closes its tasks, writes `record_stage`, then ends as Canceled —
and the history of such a cancellation replays."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from temporalio.api.enums.v1 import EventType as HistoryEventType
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import CancelledError
from temporalio.service import RPCError
from temporalio.worker import Replayer

from renewals.activity_io import PortalQuery, PortalStatus
from renewals.channels.recording import DatabasePortal
from renewals.db.database import Database
from renewals.db.tables import JourneyRow, OperatorTaskRow, OutboxRow
from renewals.intake.portfolio_store import upsert_policy
from renewals.journey_api import EventType, JourneyEvent, JourneyStatus, OperatorOutcome, Stage
from renewals.operators.workbench import Refused, Workbench
from renewals.settings import Settings
from renewals.webhooks.app import create_app
from starter.ops import ops
from tests.factories import policy
from tests.harness import INTAKE, Harness, channels_with, journey_harness, msk
from tests.keys import TEST_CONVERTER
from tests.test_journey_finish import SmsDown
from workflows.renewal import RenewalJourney
from workflows.runner import SANDBOXED_RUNNER

OPERATOR_DAY = msk(4, 3, 10)  # day −17 of a policy ending 20 April: the task is open
AUTH = {"Authorization": "Bearer op-secret"}


async def open_task(h: Harness, number: str) -> tuple[str, int]:
    p = policy("KASKO", number=number, renewal_centre=True)
    await upsert_policy(h.db, p)
    handle = await h.start(p, INTAKE)
    await h.skip_to(OPERATOR_DAY)
    async with h.db.session() as session:
        task_id = (
            await session.execute(select(OperatorTaskRow.id).where(OperatorTaskRow.journey_id == handle.id))
        ).scalar_one()
    assert [t.id for t in await Workbench(h.db, h.env.client).tasks("msk")] == [task_id]
    return handle.id, task_id


async def task_row(h: Harness, task_id: int) -> OperatorTaskRow:
    async with h.db.session() as session:
        row = await session.get(OperatorTaskRow, task_id)
    assert row is not None
    return row


async def journey_row(h: Harness, workflow_id: str) -> JourneyRow | None:
    async with h.db.session() as session:
        return await session.get(JourneyRow, workflow_id)


@pytest.mark.parametrize(
    ("event", "stage"),
    [
        (EventType.PAYMENT_RECEIVED, Stage.PAID),
        (EventType.RENEWED, Stage.RENEWED),
        (EventType.OPT_OUT, Stage.OPTED_OUT),
        (EventType.POLICY_CANCELLED, Stage.CANCELLED),
    ],
)
async def test_the_end_closes_the_open_task_with_the_outcome_as_reason(
    tmp_path: Path, event: EventType, stage: Stage
) -> None:
    async with journey_harness(tmp_path) as h:
        workflow_id, task_id = await open_task(h, f"END-{stage.value}")
        bench = Workbench(h.db, h.env.client)
        await bench.claim(task_id, "Оля")  # a claimed task closes too
        handle = h.env.client.get_workflow_handle(workflow_id, result_type=JourneyStatus)
        await handle.signal(RenewalJourney.on_event, JourneyEvent(type=event, source="portal"))
        assert (await handle.result()).stage is stage
        row = await task_row(h, task_id)
        assert (row.status, row.outcome) == ("closed", None)
        assert row.closed_reason == f"the journey ended: {stage.value} ({event.value} (portal))"
        assert row.closed_at is not None
        assert await bench.tasks("msk") == []
        [shown] = await bench.tasks("msk", include_closed=True)
        assert shown.closed_reason == row.closed_reason
        with pytest.raises(Refused) as refused:
            await bench.record_outcome(task_id, OperatorOutcome.REACHED_RENEWING, operator="Оля")
        assert str(refused.value) == (
            f"operator task {task_id} is already closed: {row.closed_reason}; nothing to record"
        )
        app = create_app(h.db, h.env.client, {"operators": "op-secret"})
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ops") as http:
            answer = await http.post(
                f"/operators/tasks/{task_id}/outcome",
                json={"outcome": "reached_renewing", "operator": "Оля"},
                headers=AUTH,
            )
            assert answer.status_code == 409
            assert answer.json()["detail"].endswith(f"{row.closed_reason}; nothing to record")
            assert (await http.get("/operators/centres/msk/tasks", headers=AUTH)).json() == []
        journey = await journey_row(h, workflow_id)
        assert journey is not None and journey.stage == stage.value


async def test_a_lapsed_journey_closes_its_task(tmp_path: Path) -> None:
    async with journey_harness(tmp_path) as h:
        workflow_id, task_id = await open_task(h, "END-LAPSED")
        handle = h.env.client.get_workflow_handle(workflow_id, result_type=JourneyStatus)
        await h.skip_to(msk(4, 22))  # nobody paid: the cover ended on 20 April
        assert (await handle.result()).stage is Stage.LAPSED
        row = await task_row(h, task_id)
        assert row.status == "closed"
        assert row.closed_reason == "the journey ended: lapsed (no payment or renewal by the end of cover)"


async def test_the_list_hides_open_tasks_of_an_ended_journey(tmp_path: Path) -> None:
    """A task left open by a journey that ended before this release (the journeys table says so) is
    not listed; with `include_closed` it still is."""
    async with journey_harness(tmp_path) as h:
        workflow_id, task_id = await open_task(h, "END-OLD")
        async with h.db.session() as session, session.begin():
            session.add(
                JourneyRow(
                    id=workflow_id,
                    policy_number="END-OLD",
                    expires_on=msk(4, 20).date(),
                    agent_id="A1",
                    product="KASKO",
                    stage="paid",
                    updated_at=datetime.now(UTC),
                )
            )
        bench = Workbench(h.db, h.env.client)
        assert await bench.tasks("msk") == []
        assert [t.id for t in await bench.tasks("msk", include_closed=True)] == [task_id]


async def test_a_ui_cancellation_request_ends_the_journey_as_cancelled(tmp_path: Path) -> None:
    async with journey_harness(tmp_path) as h:
        workflow_id, task_id = await open_task(h, "END-UI")
        handle = h.env.client.get_workflow_handle(workflow_id, result_type=JourneyStatus)
        await handle.cancel(reason="дубль: полис переоформлен")  # what the UI's button sends
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
        assert isinstance(failure.value.cause, CancelledError)
        assert (await handle.describe()).status is WorkflowExecutionStatus.CANCELED
        status = await handle.query(RenewalJourney.status)
        assert status.stage is Stage.CANCELLED
        assert ("finished: cancelled", "cancellation requested: дубль: полис переоформлен") in [
            (e.type, e.detail) for e in status.events
        ]
        row = await task_row(h, task_id)
        assert (row.status, row.closed_reason) == (
            "closed",
            "the journey ended: cancelled (cancellation requested: дубль: полис переоформлен)",
        )
        journey = await journey_row(h, workflow_id)
        assert journey is not None and journey.stage == "cancelled"  # record_stage was written
        history = await handle.fetch_history()
    kinds = [e.event_type for e in history.events]
    assert kinds.index(HistoryEventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED) < len(kinds) - 1
    assert kinds[-1] == HistoryEventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED
    replayer = Replayer(
        workflows=[RenewalJourney], workflow_runner=SANDBOXED_RUNNER, data_converter=TEST_CONVERTER
    )
    replayed = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert replayed.replay_failure is None  # the cancellation path is deterministic


async def test_a_cancellation_stops_a_retrying_send_and_records_the_outcome(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/cancel-send.db")
    sms = SmsDown()
    async with journey_harness(tmp_path, channels_with(db, sms=sms), db) as h:
        handle = await h.start(policy("KASKO", number="END-SEND"), INTAKE)
        await h.skip_to(msk(3, 6, 12))  # −45 was due at 09:00: retrying since
        attempts = sms.attempts
        assert attempts > 1
        await handle.cancel()  # no reason given, as the UI allows
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        status = await handle.query(RenewalJourney.status)
        async with db.session() as session:
            outbox = (await session.execute(select(OutboxRow))).scalar_one()
            journey = await session.get(JourneyRow, handle.id)
    await db.dispose()
    assert status.stage is Stage.CANCELLED
    assert ("finished: cancelled", "cancellation requested: no reason given") in [
        (e.type, e.detail) for e in status.events
    ]
    assert sms.attempts == attempts  # nothing went out after the request
    assert outbox.status != "sent"
    assert journey is not None and journey.stage == "cancelled"


async def test_cancel_from_the_cli_and_over_http(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async with journey_harness(tmp_path) as h:
        workflow_id, task_id = await open_task(h, "END-CLI")
        target = h.env.client.service_client.config.target_host
        settings = Settings(database_url=h.db.url, temporal_address=target)
        base = ["cancel", "END-CLI", "--by", "Оля", "--wait", "30"]
        assert await ops([*base, "--reason", "клиент +7 916 123-45-67 продал машину"], settings) == 2
        assert "quotes a phone or an e-mail" in capsys.readouterr().err
        assert await ops([*base, "--reason", " "], settings) == 2
        assert "a reason is required" in capsys.readouterr().err
        assert await ops(["cancel", "NO-SUCH", "--by", "Оля", "--reason", "x"], settings) == 2
        assert "no policy NO-SUCH in the portfolio" in capsys.readouterr().err
        assert await ops([*base, "--reason", "машина продана"], settings) == 0
        printed = capsys.readouterr().out
        assert f"{workflow_id}: cancellation requested (машина продана (by Оля))" in printed
        assert f"{workflow_id}: canceled, stage cancelled" in printed
        row = await task_row(h, task_id)
        assert (
            row.closed_reason
            == "the journey ended: cancelled (cancellation requested: машина продана (by Оля))"
        )
        assert await ops([*base, "--reason", "ещё раз"], settings) == 2  # it has ended
        assert "has already ended (canceled, stage cancelled)" in capsys.readouterr().err


async def test_cancel_over_http(tmp_path: Path) -> None:
    async with journey_harness(tmp_path) as h:
        second_id, second_task = await open_task(h, "END-HTTP")
        app = create_app(h.db, h.env.client, {"operators": "op-secret"})
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ops") as http:
            body = {"policy": "END-HTTP", "reason": "ошибка загрузки", "operator": "Петя"}
            assert (await http.post("/operators/journeys/cancel", json=body)).status_code == 401
            bad = await http.post(
                "/operators/journeys/cancel", json={**body, "reason": "пишите ivan@example.org"}, headers=AUTH
            )
            assert bad.status_code == 422 and "ivan@" not in bad.text
            unknown = await http.post(
                "/operators/journeys/cancel", json={**body, "expires_on": "2030-01-01"}, headers=AUTH
            )
            assert unknown.status_code == 404 and "no journey renewal-END-HTTP-20300101" in unknown.text
            done = await http.post("/operators/journeys/cancel", json=body, headers=AUTH)
            assert done.status_code == 202, done.text
            assert done.json()["journey_id"] == second_id
            assert done.json()["reason"] == "ошибка загрузки (by Петя)"
            handle = h.env.client.get_workflow_handle(second_id, result_type=JourneyStatus)
            with pytest.raises(WorkflowFailureError):
                await handle.result()
            again = await http.post("/operators/journeys/cancel", json=body, headers=AUTH)
            assert again.status_code == 409 and "has already ended" in again.json()["detail"]
        row = await task_row(h, second_task)
        assert row.closed_reason == (
            "the journey ended: cancelled (cancellation requested: ошибка загрузки (by Петя))"
        )


async def test_a_cancellation_after_the_end_changes_nothing(tmp_path: Path) -> None:
    """Asked once the journey has ended: Temporal refuses it (the journey is closed), and so do we."""
    async with journey_harness(tmp_path) as h:
        workflow_id, _ = await open_task(h, "END-AFTER")
        handle = h.env.client.get_workflow_handle(workflow_id, result_type=JourneyStatus)
        await handle.signal(RenewalJourney.on_event, JourneyEvent(type=EventType.PAYMENT_RECEIVED))
        assert (await handle.result()).stage is Stage.PAID
        app = create_app(h.db, h.env.client, {"operators": "op-secret"})
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ops") as http:
            body = {"policy": workflow_id, "reason": "поздно", "operator": "Оля"}
            late = await http.post("/operators/journeys/cancel", json=body, headers=AUTH)
        assert late.status_code == 409
        assert late.json()["detail"] == f"journey {workflow_id} has already ended (completed, stage paid)"
        assert (await journey_row(h, workflow_id)).stage == "paid"  # type: ignore[union-attr]


class HeldPortal(DatabasePortal):
    """Альфа-Полис answering the −5 check only once released: the cancellation arrives meanwhile."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.asked = asyncio.Event()
        self.release = asyncio.Event()

    async def renewal_status(self, query: PortalQuery) -> PortalStatus:
        self.asked.set()
        await self.release.wait()
        return PortalStatus()


async def test_a_cancellation_during_an_absorbed_activity_still_ends_the_journey(tmp_path: Path) -> None:
    """The portal check absorbs its cancelled activity (the journey goes on without the portal's
    view); the cancellation still ends the journey: −5 is not sent, the outcome is `cancelled`."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/held-portal.db")
    portal = HeldPortal(db)
    async with journey_harness(tmp_path, channels_with(db, portal=portal), db) as h:
        handle = await h.start(policy("KASKO", number="END-PORTAL"), INTAKE)
        skipping = asyncio.create_task(h.skip_to(msk(4, 15, 12)))  # −5 at 08:00 asks the portal first
        await asyncio.wait_for(portal.asked.wait(), 60)
        await handle.cancel(reason="полис расторгнут")
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        portal.release.set()
        # The journey has ended: the clock need not reach 15.04 (the time-skipping server's sleep
        # can outlast its RPC deadline once nothing runs), so the skip is dropped, not awaited.
        skipping.cancel()
        with contextlib.suppress(asyncio.CancelledError, RPCError):
            await skipping
        status = await handle.query(RenewalJourney.status)
        async with db.session() as session:
            sent = (
                await session.execute(select(OutboxRow.touchpoint).where(OutboxRow.status == "sent"))
            ).all()
            journey = await session.get(JourneyRow, handle.id)
    await db.dispose()
    assert status.stage is Stage.CANCELLED
    assert [(e.touchpoint, e.status.value, e.reason) for e in status.timeline][-1] == (
        "d-5-sms",
        "suppressed",
        "journey_finished (cancelled)",
    )
    assert [row.touchpoint for row in sent] == ["d-45-sms"]  # −5 never went out
    assert journey is not None and journey.stage == "cancelled"
