"""The operator workbench: list, claim, record an outcome — through the service, the HTTP API and the
CLI — with every refusal (unknown task, closed task, someone else's claim, callback without a time),
the `operator_outcome` update reaching the journey, and the agent kept on the renewal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from renewals.db.tables import OperatorTaskRow
from renewals.intake.portfolio_store import upsert_policy
from renewals.journey_api import (
    EventType,
    JourneyEvent,
    JourneyStatus,
    OperatorOutcome,
    OperatorOutcomeReport,
    Stage,
)
from renewals.operators.workbench import InvalidOutcome, Refused, UnknownTask, Workbench
from renewals.search_attributes import AGENT_ID
from renewals.sendwindow import zone
from renewals.settings import Settings
from renewals.temporal.journeys import journey_status, report_operator_outcome, send_event
from renewals.webhooks.app import create_app
from starter.ops import ops
from tests.factories import policy
from tests.harness import Harness, journey_harness

MSK = zone("Europe/Moscow")
INTAKE = datetime(2027, 3, 1, 10, tzinfo=MSK)
OPERATOR_DAY = datetime(2027, 4, 3, 10, tzinfo=MSK)  # day −17 of a policy ending 20 April: task open


async def open_task(h: Harness, number: str) -> tuple[str, int]:
    p = policy("KASKO", number=number, renewal_centre=True)
    await upsert_policy(h.db, p)
    handle = await h.start(p, INTAKE)
    await h.skip_to(OPERATOR_DAY)
    async with h.db.session() as session:
        task_id = (
            await session.execute(select(OperatorTaskRow.id).where(OperatorTaskRow.journey_id == handle.id))
        ).scalar_one()
    return handle.id, task_id


async def test_claim_and_outcome_with_every_refusal(tmp_path: Path) -> None:
    async with journey_harness(tmp_path) as h:
        workflow_id, task_id = await open_task(h, "OPS-1")
        bench = Workbench(h.db, h.env.client)
        [task] = await bench.tasks("msk")
        assert (task.id, task.status, task.agent_id, task.agent_phone) == (
            task_id,
            "open",
            "A1",
            "+79031112233",
        )
        assert await bench.tasks("nsk") == []

        claimed = await bench.claim(task_id, "Оля")
        assert (claimed.status, claimed.operator) == ("claimed", "Оля")
        assert (await bench.claim(task_id, "Оля")).operator == "Оля"  # claiming again is harmless
        with pytest.raises(Refused, match="already claimed by Оля"):
            await bench.claim(task_id, "Петя")
        with pytest.raises(Refused, match="claimed by Оля, not Петя"):
            await bench.record_outcome(task_id, OperatorOutcome.REFUSED, operator="Петя")
        with pytest.raises(UnknownTask, match="operator task 999 does not exist"):
            await bench.record_outcome(999, OperatorOutcome.REFUSED)
        with pytest.raises(UnknownTask):
            await bench.claim(999, "Оля")
        with pytest.raises(InvalidOutcome, match="needs the time to call back"):
            await bench.record_outcome(task_id, OperatorOutcome.CALLBACK)
        with pytest.raises(InvalidOutcome, match="in the past"):
            await bench.record_outcome(
                task_id, OperatorOutcome.CALLBACK, callback_at=datetime.now(UTC) - timedelta(hours=1)
            )

        with pytest.raises(InvalidOutcome, match="an operator name is required"):
            await bench.record_outcome(task_id, OperatorOutcome.REFUSED)  # no name: not past Оля's claim
        with pytest.raises(InvalidOutcome, match="an operator name is required"):
            await bench.record_outcome(task_id, OperatorOutcome.REFUSED, operator="  ")
        assert (await bench.task(task_id)).status == "claimed"  # nothing reached the journey
        result = await bench.record_outcome(
            task_id, OperatorOutcome.REACHED_RENEWING, note="продлит у агента", operator="Оля"
        )
        assert result.stage == Stage.OPERATOR.value  # reached: the journey carries on
        assert (result.task.status, result.task.outcome, result.task.agent_id) == (
            "closed",
            "reached_renewing",
            "A1",
        )
        async with h.db.session() as session:
            row = await session.get(OperatorTaskRow, task_id)
        assert row is not None and row.closed_at is not None
        status = await journey_status(h.env.client, workflow_id)
        assert ("operator_outcome: reached_renewing", f"task {task_id}: продлит у агента") in [
            (e.type, e.detail) for e in status.events
        ]

        with pytest.raises(Refused, match="already closed"):
            await bench.record_outcome(task_id, OperatorOutcome.REFUSED)
        with pytest.raises(Refused, match="already closed"):
            await bench.claim(task_id, "Оля")
        assert await bench.tasks("msk") == []
        assert [t.outcome for t in await bench.tasks("msk", include_closed=True)] == ["reached_renewing"]
        description = await h.env.client.get_workflow_handle(workflow_id).describe()
        assert description.typed_search_attributes.get(AGENT_ID) == "A1"  # the agent kept the renewal


async def test_http_api_and_cli_refusal_ends_the_journey(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with journey_harness(tmp_path) as h:
        workflow_id, task_id = await open_task(h, "OPS-2")
        app = create_app(h.db, h.env.client, {"operators": "op-secret"})
        auth = {"Authorization": "Bearer op-secret"}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ops") as http:
            assert (await http.get("/operators/centres/msk/tasks")).status_code == 401
            listed = await http.get("/operators/centres/msk/tasks", headers=auth)
            assert [(t["id"], t["agent_id"]) for t in listed.json()] == [(task_id, "A1")]
            claim = await http.post(
                f"/operators/tasks/{task_id}/claim", json={"operator": "Оля"}, headers=auth
            )
            assert claim.status_code == 200 and claim.json()["operator"] == "Оля"
            other = await http.post(
                f"/operators/tasks/{task_id}/claim", json={"operator": "Петя"}, headers=auth
            )
            assert other.status_code == 409 and "already claimed by Оля" in other.json()["detail"]
            missing = await http.post(
                "/operators/tasks/999/outcome", json={"outcome": "refused"}, headers=auth
            )
            assert missing.status_code == 404
            bad = await http.post(
                f"/operators/tasks/{task_id}/outcome", json={"outcome": "maybe"}, headers=auth
            )
            assert bad.status_code == 422
            callback = await http.post(
                f"/operators/tasks/{task_id}/outcome", json={"outcome": "callback"}, headers=auth
            )
            assert callback.status_code == 422 and "callback_at" in callback.json()["detail"]
            for nameless in ({"outcome": "refused"}, {"outcome": "refused", "operator": " "}):
                bypass = await http.post(f"/operators/tasks/{task_id}/outcome", json=nameless, headers=auth)
                assert bypass.status_code == 422, bypass.text  # Оля's claim is not bypassed without a name
                assert bypass.json()["detail"] == "an operator name is required"
            other_outcome = await http.post(
                f"/operators/tasks/{task_id}/outcome",
                json={"outcome": "refused", "operator": "Петя"},
                headers=auth,
            )
            assert other_outcome.status_code == 409 and "claimed by Оля, not Петя" in other_outcome.text
            for bad_id in ("99999999999999999999", "2147483648", "0", "-1", "abc", "1.5", "１", "9" * 5000):
                for path, body in (("claim", {"operator": "Оля"}), ("outcome", {"outcome": "refused"})):
                    answer = await http.post(f"/operators/tasks/{bad_id}/{path}", json=body, headers=auth)
                    assert answer.status_code == 422, (bad_id, path, answer.text)
                    detail = answer.json()["detail"]
                    assert detail.startswith("a task id is a whole number from 1 to 2147483647")
                    assert len(detail) < 120  # never the whole id echoed back
            done = await http.post(
                f"/operators/tasks/{task_id}/outcome",
                json={"outcome": "refused", "operator": "Оля"},
                headers=auth,
            )
            assert done.status_code == 200 and done.json()["stage"] == "refused"
            agent_block = {k: done.json()["task"][k] for k in ("agent_id", "agent_name", "agent_phone")}
            assert agent_block == {
                "agent_id": "A1",
                "agent_name": "Петрова Анна",
                "agent_phone": "+79031112233",
            }
            again = await http.post(
                f"/operators/tasks/{task_id}/outcome", json={"outcome": "refused"}, headers=auth
            )
            assert again.status_code == 409 and "already closed" in again.json()["detail"]
        refused_handle = h.env.client.get_workflow_handle(workflow_id, result_type=JourneyStatus)
        final = await refused_handle.result()
        assert final.stage is Stage.REFUSED
        assert (await refused_handle.describe()).typed_search_attributes.get(AGENT_ID) == "A1"

        target = h.env.client.service_client.config.target_host
        settings = Settings(database_url=h.db.url, temporal_address=target)
        assert await ops(["operator", "tasks", "--centre", "msk", "--all"], settings) == 0
        assert await ops(["operator", "outcome", str(task_id), "refused"], settings) == 2  # closed
        assert await ops(["operator", "claim", "999", "--operator", "Оля"], settings) == 2  # unknown
        capsys.readouterr()
        for bad_id in ("99999999999999999999", "abc", "-5"):
            assert await ops(["operator", "claim", bad_id, "--operator", "Оля"], settings) == 2
            assert await ops(["operator", "outcome", bad_id, "refused", "--operator", "Оля"], settings) == 2
            refusals = capsys.readouterr().err.splitlines()
            assert len(refusals) == 2 and all(
                line.startswith("refused: a task id is a whole number from 1 to") for line in refusals
            ), refusals
        with pytest.raises(UnknownTask, match="task ids go from 1 to 2147483647"):
            await Workbench(h.db, h.env.client).task(2**63)
        assert (
            await ops(
                ["operator", "outcome", str(task_id), "callback", "--callback-at", "tomorrow"], settings
            )
            == 2
        )


async def test_cli_records_an_outcome_through_the_journey(tmp_path: Path) -> None:
    async with journey_harness(tmp_path) as h:
        workflow_id, task_id = await open_task(h, "OPS-3")
        target = h.env.client.service_client.config.target_host
        settings = Settings(database_url=h.db.url, temporal_address=target)
        assert await ops(["operator", "claim", str(task_id), "--operator", "Оля"], settings) == 0
        assert await ops(["operator", "outcome", str(task_id), "do_not_contact"], settings) == 2  # no name
        assert (await Workbench(h.db, h.env.client).task(task_id)).status == "claimed"
        assert (
            await ops(["operator", "outcome", str(task_id), "do_not_contact", "--operator", "Оля"], settings)
            == 0
        )
        handle = h.env.client.get_workflow_handle(workflow_id, result_type=JourneyStatus)
        final = await handle.result()
        assert final.stage is Stage.OPTED_OUT
        assert (await handle.describe()).typed_search_attributes.get(AGENT_ID) == "A1"  # agent kept
        [task] = await Workbench(h.db, h.env.client).tasks("msk", include_closed=True)
        assert (task.outcome, task.agent_id, task.agent_name, task.agent_phone) == (
            "do_not_contact",
            "A1",
            "Петрова Анна",
            "+79031112233",
        )


async def test_callback_keeps_the_task_open_until_it_is_due_then_wrong_number_closes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with journey_harness(tmp_path) as h:
        workflow_id, task_id = await open_task(h, "OPS-4")
        bench = Workbench(h.db, h.env.client)
        await bench.claim(task_id, "Оля")
        call_back = (datetime.now(UTC) + timedelta(hours=3)).replace(microsecond=0)
        result = await bench.record_outcome(
            task_id,
            OperatorOutcome.CALLBACK,
            note="просит перезвонить вечером",
            callback_at=call_back,
            operator="Оля",
        )
        assert result.stage == Stage.OPERATOR.value
        assert (result.task.status, result.task.outcome, result.task.callback_at) == (
            "claimed",
            "callback",
            call_back,
        )
        assert (result.task.due_at, result.task.note, result.task.agent_id) == (
            call_back,
            "просит перезвонить вечером",
            "A1",
        )
        async with h.db.session() as session:
            row = await session.get(OperatorTaskRow, task_id)
        assert row is not None and row.closed_at is None

        assert [t.id for t in await bench.tasks("msk")] == [task_id]  # still on the centre's list
        assert await bench.tasks("msk", due_by=call_back - timedelta(minutes=1)) == []  # not due yet
        [due] = await bench.tasks("msk", due_by=call_back)
        assert (due.id, due.due_at, due.operator) == (task_id, call_back, "Оля")

        app = create_app(h.db, h.env.client, {"operators": "op-secret"})
        auth = {"Authorization": "Bearer op-secret"}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ops") as http:
            listed = (await http.get("/operators/centres/msk/tasks", headers=auth)).json()
            assert [(t["id"], t["outcome"], t["due_at"][:16]) for t in listed] == [
                (task_id, "callback", call_back.isoformat()[:16])
            ]
            due_now = await http.get("/operators/centres/msk/tasks?due=true", headers=auth)
            assert due_now.json() == []  # the call back is three hours away
        target = h.env.client.service_client.config.target_host
        settings = Settings(database_url=h.db.url, temporal_address=target)
        assert await ops(["operator", "tasks", "--centre", "msk"], settings) == 0
        listing = capsys.readouterr().out
        assert "OPS-4" in listing and "call back" in listing and "просит перезвонить" in listing
        assert await ops(["operator", "tasks", "--centre", "msk", "--due"], settings) == 0
        assert "OPS-4" not in capsys.readouterr().out

        # At the call back the client turns out not to be there: the same task gets the real outcome.
        closed = await bench.record_outcome(
            task_id, OperatorOutcome.WRONG_NUMBER, note="номер чужой", operator="Оля"
        )
        assert closed.stage == Stage.OPERATOR.value  # the journey carries on (−5 SMS still to come)
        assert (closed.task.status, closed.task.outcome, closed.task.note, closed.task.callback_at) == (
            "closed",
            "wrong_number",
            "номер чужой",
            None,
        )
        assert closed.task.agent_id == "A1"
        assert await bench.tasks("msk") == []
        status = await journey_status(h.env.client, workflow_id)
        outcomes = [(e.type, e.detail) for e in status.events if e.type.startswith("operator_outcome")]
        assert outcomes == [
            ("operator_outcome: callback", f"task {task_id}: просит перезвонить вечером"),
            ("operator_outcome: wrong_number", f"task {task_id}: номер чужой"),
        ]


async def test_journey_refusals_catch_up_and_a_finished_journey(tmp_path: Path) -> None:
    async with journey_harness(tmp_path) as h:
        workflow_id, task_id = await open_task(h, "OPS-5")
        bench = Workbench(h.db, h.env.client)
        async with h.db.session() as session, session.begin():
            stray = OperatorTaskRow(
                dedup_key=f"{workflow_id}:stray",
                journey_id=workflow_id,
                policy_number="OPS-5",
                centre_id="msk",
                reason="задача, которой журнея не открывала",
                text="…",
                status="open",
                created_at=datetime.now(UTC),
            )
            session.add(stray)
        stray_id = stray.id

        # The journey's validator refuses a task it does not know: 409 with its reason.
        app = create_app(h.db, h.env.client, {"operators": "op-secret"})
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ops") as http:
            refused = await http.post(
                f"/operators/tasks/{stray_id}/outcome",
                json={"outcome": "reached_renewing", "operator": "Оля"},
                headers={"Authorization": "Bearer op-secret"},
            )
        assert refused.status_code == 409
        assert (
            f"operator task {stray_id} does not belong to journey {workflow_id}" in refused.json()["detail"]
        )
        assert (await bench.task(stray_id)).status == "open"  # nothing recorded on a refusal

        # The journey already has an outcome the task row missed: refused, and the row catches up.
        await report_operator_outcome(
            h.env.client,
            workflow_id,
            OperatorOutcomeReport(task_id=str(task_id), outcome=OperatorOutcome.REACHED_RENEWING),
        )
        with pytest.raises(Refused, match="already closed"):
            await bench.record_outcome(task_id, OperatorOutcome.REACHED_RENEWING, operator="Оля")
        caught_up = await bench.task(task_id)
        assert (caught_up.status, caught_up.outcome) == ("closed", "reached_renewing")

        # The journey finished (paid) while a task was still open: its end closed the task (issue 13),
        # so a late outcome is refused with the reason, and the task keeps no outcome.
        await send_event(
            h.env.client, workflow_id, JourneyEvent(type=EventType.PAYMENT_RECEIVED, source="portal")
        )
        handle = h.env.client.get_workflow_handle(workflow_id, result_type=JourneyStatus)
        assert (await handle.result()).stage is Stage.PAID
        with pytest.raises(Refused, match="already closed: the journey ended: paid"):
            await bench.record_outcome(
                stray_id, OperatorOutcome.REACHED_RENEWING, note="уже оплатил", operator="Оля"
            )
        late = await bench.task(stray_id)
        assert (late.status, late.outcome, late.agent_id) == ("closed", None, "A1")
