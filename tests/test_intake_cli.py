"""The intake commands against the local dev server: import → start (idempotent) → a changed or cancelled
policy reaches the running journey on re-import → status and list find journeys by search attributes."""

from __future__ import annotations

import asyncio
import csv
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from activities.renewal import JourneyActivities
from renewals.channels.factory import recording_channels
from renewals.db.database import Database
from renewals.journey_api import JourneyStatus, Stage
from renewals.models import journey_id
from renewals.settings import Settings
from renewals.temporal.connection import TemporalTimeout, connect
from renewals.temporal.journeys import journey_status
from starter.ops import ops
from tests.harness import local_dev_server
from worker import build_worker

QUEUE = "intake-cli-test"
HEADER = ["kind", "number", "product", "expires_on", "renewal_centre", "cancelled", "last_name", "first_name",
          "phone", "email", "agent_id", "centre_id", "agent_name", "agent_phone", "rate_kasko", "centre_name",
          "centre_phone"]  # fmt: skip


@pytest.fixture(scope="module")
async def dev_server() -> AsyncIterator[WorkflowEnvironment]:
    env = await local_dev_server()
    yield env
    await env.shutdown()


def portfolio(path: Path, phone: str = "+79161234567", cancelled: str = "false") -> Path:
    ends = date.today() + timedelta(days=40)
    rows = [
        {"kind": "centre", "centre_id": "msk", "centre_name": "Москва", "centre_phone": "+74957770000"},
        {"kind": "agent", "agent_id": "A-1", "agent_name": "Петрова Анна", "agent_phone": "+79031112233",
         "rate_kasko": "60%"},
        {"kind": "policy", "number": "7100K/046/000301/26", "product": "KASKO", "expires_on": str(ends),
         "renewal_centre": "true", "last_name": "Иванов", "first_name": "Иван", "phone": phone,
         "email": "ivan@example.org", "agent_id": "A-1", "centre_id": "msk"},
        {"kind": "policy", "number": "7100K/046/000302/26", "product": "KASKO", "expires_on": str(ends),
         "cancelled": cancelled, "last_name": "Петров", "first_name": "Пётр", "phone": "+79161230002",
         "agent_id": "A-1"},
        {"kind": "policy", "number": "7100K/046/000303/26", "product": "KASKO",
         "expires_on": (date.today() + timedelta(days=90)).isoformat(), "last_name": "Сидоров",
         "first_name": "Сидор", "phone": "+79161230003", "agent_id": "A-1"},
    ]  # fmt: skip
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, HEADER)
        writer.writeheader()
        writer.writerows(rows)
    return path


async def test_import_start_sync_status_and_list(
    dev_server: WorkflowEnvironment, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = dev_server.client
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/cli.db",
        temporal_address=client.service_client.config.target_host,
        task_queue=QUEUE,
    )
    db = Database(settings.database_url)
    await db.migrate()
    ends = date.today() + timedelta(days=40)
    first_id = journey_id("7100K/046/000301/26", ends)
    second_id = journey_id("7100K/046/000302/26", ends)
    try:
        async with build_worker(client, QUEUE, JourneyActivities(db, recording_channels(db))):
            assert await ops(["import", str(portfolio(tmp_path / "p.csv"))], settings) == 0
            assert await ops(["start", "--horizon-days", "60"], settings) == 0
            assert "started: 2" in capsys.readouterr().out  # the 90-day policy is beyond the horizon
            assert await ops(["start"], settings) == 0
            assert "already running: 2" in capsys.readouterr().out

            changed = portfolio(tmp_path / "p2.csv", phone="+79169998877", cancelled="true")
            assert await ops(["import", str(changed)], settings) == 0
            assert "running journeys: cancelled: 1, updated: 1" in capsys.readouterr().out
            status = await client.get_workflow_handle(first_id).query("status", result_type=JourneyStatus)
            assert [e.type for e in status.events] == ["policy_updated"]
            cancelled = await client.get_workflow_handle(second_id, result_type=JourneyStatus).result()
            assert cancelled.stage is Stage.CANCELLED

            assert await ops(["import", str(changed)], settings) == 0  # the same file again: nothing to tell
            assert "running journeys" not in capsys.readouterr().out

            assert await ops(["status", "7100K/046/000301/26"], settings) == 0
            shown = capsys.readouterr().out
            assert first_id in shown and "scheduled" in shown and "policy_updated" in shown
            assert await ops(["status", "NOPE"], settings) == 2

            assert await ops(["list", "--centre", "msk", "--agent", "A-1"], settings) == 0
            listed = capsys.readouterr().out
            assert first_id in listed and second_id not in listed and "1 journeys" in listed
            assert await ops(["list", "--stage", "cancelled"], settings) == 0
            assert second_id in capsys.readouterr().out
    finally:
        await db.dispose()


async def test_start_with_no_worker_gives_up_saying_what_it_waits_for(
    dev_server: WorkflowEnvironment,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Starting needs no worker, but passing a change on to a running journey (an update) does: with
    nobody polling the task queue, `renewals start` gives up after the call timeout and says why."""
    queue = "nobody-polls-this"
    settings = Settings(
        temporal_call_timeout_seconds=1.0,
        database_url=f"sqlite+aiosqlite:///{tmp_path}/idle.db",
        temporal_address=dev_server.client.service_client.config.target_host,
        task_queue=queue,
    )
    first = portfolio(tmp_path / "p.csv").read_text(encoding="utf-8").replace("/26", "/27")
    (tmp_path / "p.csv").write_text(first, encoding="utf-8")
    assert await ops(["import", str(tmp_path / "p.csv")], settings) == 0
    assert await ops(["start", "--horizon-days", "60"], settings) == 0  # no worker needed to start
    assert "started: 2" in capsys.readouterr().out
    changed = portfolio(tmp_path / "p2.csv", phone="+79169998877").read_text(encoding="utf-8")
    (tmp_path / "p2.csv").write_text(changed.replace("/26", "/27"), encoding="utf-8")
    assert await ops(["import", "--no-sync", str(tmp_path / "p2.csv")], settings) == 0
    capsys.readouterr()

    code = await asyncio.wait_for(ops(["start", "--horizon-days", "60"], settings), timeout=30)
    assert code == 2
    [line] = [text for text in capsys.readouterr().err.splitlines() if "gave up" in text]
    assert f"waiting for a worker on task queue {queue}" in line and "`renewals worker` running?" in line
    assert line.startswith("start: gave up after 1s")

    # A query is answered by a worker too: the client of a command names what it waits for.
    client = await connect(settings, call_timeout=1.0)
    with pytest.raises(TemporalTimeout, match=f"worker on task queue {queue} to answer query status"):
        await journey_status(client, journey_id("7100K/046/000301/27", date.today() + timedelta(days=40)))
