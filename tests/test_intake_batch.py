"""Intake at volume: imports commit a batch at a time and write only what changed; an agent's or
centre's change queues their clients' journeys for an update; `renewals start` runs many starts at
once without ever starting a term twice."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from temporalio.client import Client

from renewals.db.database import Database
from renewals.db.tables import PolicyRow
from renewals.db.tables_ops import JourneySyncRow
from renewals.intake.importer import BATCH, import_file
from renewals.intake.journey_sync import start_due_journeys
from renewals.intake.portfolio_store import load_policy
from renewals.models import Policy, journey_id
from renewals.sendwindow import SendWindow
from tests.factories import ChangeCollector
from tests.harness import local_dev_server

TODAY = date.today()
EXPIRES = TODAY + timedelta(days=40)
AGENT = {"kind": "agent", "agent_id": "A-1", "agent_name": "Петрова Анна", "agent_phone": "+79031112233"}
CENTRE = {"kind": "centre", "centre_id": "msk", "centre_name": "Москва", "centre_phone": "+74957770000"}


def policy_row(i: int, **changes: Any) -> dict[str, Any]:
    return {
        "kind": "policy",
        "number": f"7100K/046/{i:06d}/26",
        "product": "KASKO",
        "expires_on": EXPIRES.isoformat(),
        "renewal_centre": True,
        "last_name": "Иванов",
        "first_name": "Иван",
        "phone": f"+7916{i:07d}",
        "timezone": "Europe/Moscow",
        "agent_id": "A-1",
        "centre_id": "msk",
    } | changes


def write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


async def test_import_commits_in_batches_and_changes_only_what_changed(
    sqlite_db: Database, tmp_path: Path
) -> None:
    n = BATCH + 20  # two batches
    rows = [AGENT, CENTRE, *(policy_row(i) for i in range(n))]
    report = await import_file(sqlite_db, write(tmp_path / "p.jsonl", rows), TODAY)
    assert report.ok and report.counts["policy inserted"] == n
    async with sqlite_db.session() as session:
        assert (await session.execute(select(func.count()).select_from(PolicyRow))).scalar_one() == n

    rows[2 + BATCH + 5] = policy_row(BATCH + 5, phone="+79160000999")  # one change, in the second batch
    sink = ChangeCollector()
    again = await import_file(sqlite_db, write(tmp_path / "p.jsonl", rows), TODAY, on_changed=sink)
    assert again.counts["policy unchanged"] == n - 1 and again.counts["policy updated"] == 1
    assert [p.client.phone for p, _ in sink.changes] == ["+79160000999"]
    stored = await load_policy(sqlite_db, f"7100K/046/{BATCH + 5:06d}/26", EXPIRES)
    assert stored is not None and stored.policy.client.phone == "+79160000999"


async def test_an_agent_or_centre_change_queues_their_clients_journeys(
    sqlite_db: Database, tmp_path: Path
) -> None:
    first = [AGENT, CENTRE, policy_row(1), policy_row(2)]
    await import_file(sqlite_db, write(tmp_path / "a.jsonl", first), TODAY)
    moved = AGENT | {"agent_phone": "+79035550000"}
    sink = ChangeCollector()
    report = await import_file(sqlite_db, write(tmp_path / "b.jsonl", [moved]), TODAY, on_changed=sink)
    assert report.counts["agent updated"] == 1
    assert sorted(sink.numbers) == ["7100K/046/000001/26", "7100K/046/000002/26"]
    assert all(p.agent.phone == "+79035550000" for p, _ in sink.changes)

    centre = CENTRE | {"centre_phone": "+74957771111"}
    sink = ChangeCollector()
    rows = [centre, policy_row(1, phone="+79160000777")]  # a changed row of a policy the centre reaches
    report = await import_file(sqlite_db, write(tmp_path / "c.jsonl", rows), TODAY, on_changed=sink)
    assert sink.numbers.count("7100K/046/000001/26") == 1  # passed on once, after the whole file
    assert len(sink.changes) == 2 and report.changed == 2
    assert all(p.regional_centre and p.regional_centre.phone == "+74957771111" for p, _ in sink.changes)
    assert dict((p.number, p.client.phone) for p, _ in sink.changes)["7100K/046/000001/26"] == "+79160000777"


@pytest.fixture(scope="module")
async def dev_server() -> AsyncIterator[Client]:
    env = await local_dev_server()
    try:
        yield env.client
    finally:
        await env.shutdown()


async def test_concurrent_start_starts_each_term_once_and_records_it(
    dev_server: Client, sqlite_db: Database, tmp_path: Path
) -> None:
    rows = [AGENT, CENTRE, *(policy_row(i) for i in range(120))]
    await import_file(sqlite_db, write(tmp_path / "p.jsonl", rows), TODAY)
    queue = "intake-batch"  # no worker: the journeys only need to exist

    first = await start_due_journeys(dev_server, sqlite_db, TODAY, 60, queue, SendWindow(), concurrency=30)
    assert first.counts == {"started": 120}, first.problems
    async with sqlite_db.session() as session:
        assert (await session.execute(select(func.count()).select_from(JourneySyncRow))).scalar_one() == 120

    again = await start_due_journeys(dev_server, sqlite_db, TODAY, 60, queue, SendWindow(), concurrency=30)
    assert again.counts == {"already running": 120}

    # A term whose journey finished and whose record we lost is never started again.
    finished = journey_id("7100K/046/000007/26", EXPIRES)
    await dev_server.get_workflow_handle(finished).terminate("test: the journey ended")
    async with sqlite_db.session() as session, session.begin():
        await session.delete(await session.get(JourneySyncRow, finished))
    third = await start_due_journeys(dev_server, sqlite_db, TODAY, 60, queue, SendWindow(), concurrency=30)
    assert third.counts == {"already running": 119, "already finished": 1}


@pytest.mark.parametrize("sync", [False, True], ids=["no-sync", "sync"])
async def test_import_memory_does_not_grow_with_the_file(
    sqlite_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sync: bool
) -> None:
    """Streamed: memory is one batch plus the few keys a row the duplicate checks keep — with the
    journeys' sync too, which is handed each batch's changes as it is stored (it used to get a list of
    every changed policy at the end)."""
    import gc
    import tracemalloc

    from renewals.intake import importer

    monkeypatch.setattr(importer, "BATCH", 100)
    peaks = []
    for start, n in ((20_000, 100), (0, 300), (10_000, 1_500)):  # the first warms the caches up
        gc.collect()
        source = write(tmp_path / f"p{n}.jsonl", [AGENT, CENTRE, *(policy_row(start + i) for i in range(n))])
        tracemalloc.start()
        handed: list[int] = []

        async def discard(changes: Sequence[tuple[Policy, bool]], handed: list[int] = handed) -> None:
            handed.append(len(changes))

        report = await importer.import_file(sqlite_db, source, TODAY, on_changed=discard if sync else None)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert report.ok and report.counts["policy inserted"] == n and report.changed == n
        assert sum(handed) == (n if sync else 0) and max(handed, default=0) <= 100
    per_row = (peaks[2] - peaks[1]) / 1_200  # the duplicate and one-client checks' keys only
    assert per_row < 1_500, peaks  # before streaming every row was held whole: over 4 kB a row


async def test_the_rejects_file_cannot_be_the_input(sqlite_db: Database, tmp_path: Path) -> None:
    from renewals.intake.records import FileFormatError

    source = write(tmp_path / "p.jsonl", [AGENT, policy_row(1, phone="12")])
    with pytest.raises(FileFormatError, match="cannot be the file being imported"):
        await import_file(sqlite_db, source, TODAY, rejects_path=source)
    assert source.read_text(encoding="utf-8").count("\n") == 2  # untouched


async def test_bounded_stops_the_other_calls_at_the_first_failure() -> None:
    """A failed call (or a CLI timeout) must not leave the rest running on unobserved."""
    import asyncio

    from renewals.intake.journey_sync import bounded

    started: list[int] = []
    cancelled: list[int] = []
    release = asyncio.Event()

    async def call(item: int) -> int:
        started.append(item)
        if item == 0:
            await asyncio.sleep(0)  # let the others start first
            raise ValueError("the first one fails")
        try:
            await release.wait()  # never set: only a cancellation ends these
        except asyncio.CancelledError:
            cancelled.append(item)
            raise
        return item

    with pytest.raises(ValueError, match="the first one fails"):
        await asyncio.wait_for(bounded(list(range(10)), call, concurrency=4), timeout=10)
    # every call running beside it was cancelled (with gather they went on waiting), and those still
    # queued never started
    assert sorted(cancelled) == sorted(started)[1:] and len(started) < 10
