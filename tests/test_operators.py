"""The operator workbench: list, claim, record an outcome — through the service, the HTTP API and the
CLI — with every refusal (unknown task, closed task, someone else's claim, callback without a time),
the `operator_outcome` update reaching the journey, and the agent kept on the renewal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from renewals.db.policies import upsert_policy
from renewals.db.tables import OperatorTaskRow
from renewals.journey import JourneyStatus, OperatorOutcome, Stage
from renewals.operators.workbench import InvalidOutcome, Refused, UnknownTask, Workbench
from renewals.search_attributes import AGENT_ID
from renewals.sendwindow import zone
from renewals.settings import Settings
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

        result = await bench.record_outcome(
            task_id, OperatorOutcome.REACHED_RENEWING, note="продлит у агента"
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
        handle = h.env.client.get_workflow_handle(workflow_id, result_type=JourneyStatus)
        status = await handle.query("status", result_type=JourneyStatus)
        assert ("operator_outcome: reached_renewing", f"task {task_id}: продлит у агента") in [
            (e.type, e.detail) for e in status.events
        ]

        with pytest.raises(Refused, match="already closed"):
            await bench.record_outcome(task_id, OperatorOutcome.REFUSED)
        with pytest.raises(Refused, match="already closed"):
            await bench.claim(task_id, "Оля")
        assert await bench.tasks("msk") == []
        assert [t.outcome for t in await bench.tasks("msk", include_closed=True)] == ["reached_renewing"]
        description = await handle.describe()
        assert description.typed_search_attributes.get(AGENT_ID) == "A1"  # the agent kept the renewal


async def test_http_api_and_cli_refusal_ends_the_journey(tmp_path: Path) -> None:
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
            done = await http.post(
                f"/operators/tasks/{task_id}/outcome",
                json={"outcome": "refused", "operator": "Оля"},
                headers=auth,
            )
            assert done.status_code == 200 and done.json()["stage"] == "refused"
            again = await http.post(
                f"/operators/tasks/{task_id}/outcome", json={"outcome": "refused"}, headers=auth
            )
            assert again.status_code == 409 and "already closed" in again.json()["detail"]
        final = await h.env.client.get_workflow_handle(workflow_id, result_type=JourneyStatus).result()
        assert final.stage is Stage.REFUSED

        target = h.env.client.service_client.config.target_host
        settings = Settings(database_url=h.db.url, temporal_address=target)
        assert await ops(["operator", "tasks", "--centre", "msk", "--all"], settings) == 0
        assert await ops(["operator", "outcome", str(task_id), "refused"], settings) == 2  # closed
        assert await ops(["operator", "claim", "999", "--operator", "Оля"], settings) == 2  # unknown
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
        assert (
            await ops(["operator", "outcome", str(task_id), "do_not_contact", "--operator", "Оля"], settings)
            == 0
        )
        final = await h.env.client.get_workflow_handle(workflow_id, result_type=JourneyStatus).result()
        assert final.stage is Stage.OPTED_OUT
