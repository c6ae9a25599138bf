"""Group commit (renewals/db/group_commit.py) and the outbox's batched claims and marks, on SQLite and
(in CI) PostgreSQL: concurrent writes share transactions, each caller still gets its own answer."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection

from renewals.activity_io import SendRequest
from renewals.db.database import Database
from renewals.db.group_commit import GroupCommit
from renewals.db.tables import OptOutRow, OutboxRow
from renewals.models import Channel
from renewals.outbox import Outbox


def _request(i: int, recipient: str = "+79161234567") -> SendRequest:
    return SendRequest(
        journey_id=f"renewal-{i}-20270420",
        touchpoint="d-30-sms",
        channel=Channel.SMS,
        template="rc_sms_30",
        recipient=recipient,
        text="Иван Петрович, …",
    )


def _count_transactions(db: Database) -> list[int]:
    begun = [0]

    def on_begin(_connection: object) -> None:
        begun[0] += 1

    event.listen(db.engine.sync_engine, "begin", on_begin)
    return begun


async def test_concurrent_claims_and_marks_share_transactions_and_each_gets_its_own_state(
    any_db: Database,
) -> None:
    outbox = Outbox(any_db)
    async with any_db.engine.begin() as connection:
        await connection.execute(
            OptOutRow.__table__.insert().values(
                address_hash="listed", reason="отказ", source="journey", created_at=datetime.now(UTC)
            )
        )
    await outbox.claim(_request(0))  # an existing pending row: its next claim is `resumed`
    begun = _count_transactions(any_db)
    claims = [_request(i) for i in range(60)]
    keys = ["listed" if i == 7 else None for i in range(60)]
    states = await asyncio.gather(*(outbox.claim(r, k) for r, k in zip(claims, keys, strict=True)))
    assert begun[0] < 10, f"60 concurrent claims took {begun[0]} transactions"
    assert states[0].status == "pending" and states[0].resumed
    assert states[7].status == "suppressed" and states[7].reason == "OptedOut: отказ"
    assert all(s.status == "pending" and not s.resumed for i, s in enumerate(states) if i not in (0, 7))

    begun[0] = 0
    await asyncio.gather(
        *(
            outbox.mark(r.dedup_key, "sent", provider="smsc", provider_message_id=f"m-{i}")
            for i, r in enumerate(claims)
        )
    )
    assert begun[0] < 10, f"60 concurrent marks took {begun[0]} transactions"
    async with any_db.session() as session:
        rows = dict((await session.execute(select(OutboxRow.dedup_key, OutboxRow.provider_message_id))).all())
    assert rows == {r.dedup_key: f"m-{i}" for i, r in enumerate(claims)}


async def test_the_same_key_twice_in_one_batch_is_new_once_then_resumed(any_db: Database) -> None:
    outbox = Outbox(any_db)
    first, second = await asyncio.gather(outbox.claim(_request(1)), outbox.claim(_request(1)))
    assert (first.resumed, second.resumed) == (False, True)  # the second may send: it must reconcile
    async with any_db.session() as session:
        assert (await session.execute(select(func.count()).select_from(OutboxRow))).scalar_one() == 1


async def test_a_failed_batch_fails_every_caller_and_the_next_batch_runs(sqlite_db: Database) -> None:
    calls: list[list[int]] = []

    async def work(_connection: AsyncConnection, items: Sequence[int]) -> list[int]:
        calls.append(list(items))
        if 13 in items:
            raise OperationalError("UPDATE …", {}, Exception("database is locked"))
        return [i * 2 for i in items]

    batcher: GroupCommit[int, int] = GroupCommit(sqlite_db.engine, work)
    results = await asyncio.gather(*(batcher.submit(i) for i in (12, 13, 14)), return_exceptions=True)
    assert all(isinstance(r, OperationalError) for r in results)  # one transaction: all or nothing
    assert await batcher.submit(3) == 6
    assert calls == [[12, 13, 14], [3]]


async def test_a_caller_cancelled_before_its_batch_is_left_out(sqlite_db: Database) -> None:
    written: list[int] = []
    in_flight, gate = asyncio.Event(), asyncio.Event()

    async def work(_connection: AsyncConnection, items: Sequence[int]) -> list[None]:
        in_flight.set()
        await gate.wait()  # the first batch stays in flight while 2 and 3 queue
        written.extend(items)
        return [None] * len(items)

    batcher: GroupCommit[int, None] = GroupCommit(sqlite_db.engine, work)
    first = asyncio.create_task(batcher.submit(1))
    await in_flight.wait()
    second, third = asyncio.create_task(batcher.submit(2)), asyncio.create_task(batcher.submit(3))
    await asyncio.wait([second, third], timeout=0)  # both submitted and waiting for their batch
    second.cancel()
    gate.set()
    await asyncio.gather(first, third)
    assert written == [1, 3]
    with pytest.raises(asyncio.CancelledError):
        await second
