"""The schema and the idempotent writes, on SQLite and (in CI) PostgreSQL."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, func, select

from renewals.activity_io import PortalQuery, SendRequest, SuppressionRecord
from renewals.channels.base import PermanentSendError
from renewals.channels.recording import DatabasePortal, RecordingMessages, ScriptedRobot
from renewals.db.database import Database
from renewals.db.tables import Base, OutboxRow, PortalRenewalRow, SandboxMessageRow
from renewals.models import Channel
from renewals.outbox import Outbox
from tests.conftest import POSTGRES_URL


def _request(touchpoint: str = "d-30-sms") -> SendRequest:
    return SendRequest(
        journey_id="renewal-X-20270420",
        touchpoint=touchpoint,
        channel=Channel.SMS,
        template="base_osago_30",
        recipient="+79161234567",
        text="Иван Петрович, …",
    )


async def test_migrations_create_exactly_the_models_schema(any_db: Database) -> None:
    def diff(connection: Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))

    async with any_db.engine.connect() as connection:
        assert await connection.run_sync(diff) == []


async def test_migrate_twice_is_harmless(any_db: Database) -> None:
    await any_db.migrate()
    async with any_db.session() as session:
        assert (await session.execute(select(func.count()).select_from(OutboxRow))).scalar_one() == 0


async def test_outbox_claim_is_idempotent_and_keeps_the_sent_state(any_db: Database) -> None:
    outbox = Outbox(any_db)
    first = await outbox.claim(_request())
    assert first.status == "pending"
    await outbox.mark(_request().dedup_key, "sent", provider="sandbox", provider_message_id="m-1")
    again = await outbox.claim(_request())
    assert (again.status, again.provider_message_id) == ("sent", "m-1")
    async with any_db.session() as session:
        assert (await session.execute(select(func.count()).select_from(OutboxRow))).scalar_one() == 1


async def test_suppression_record_settles_a_pending_row_but_never_a_sent_one(any_db: Database) -> None:
    outbox = Outbox(any_db)
    await outbox.claim(_request("d-5-sms"))
    await outbox.claim(_request("d-30-sms"))
    await outbox.mark(_request("d-30-sms").dedup_key, "sent", provider="sandbox", provider_message_id="m")
    for touchpoint in ("d-5-sms", "d-30-sms"):
        await outbox.record(
            SuppressionRecord(
                journey_id="renewal-X-20270420",
                touchpoint=touchpoint,
                channel=Channel.SMS,
                template="t",
                recipient=None,
                status="failed",
                reason="TimedOut: gave up",
            )
        )
    async with any_db.session() as session:
        rows = {r.touchpoint: r.status for r in (await session.execute(select(OutboxRow))).scalars()}
    assert rows == {"d-5-sms": "failed", "d-30-sms": "sent"}


async def test_recording_channel_accepts_each_dedup_key_once(any_db: Database) -> None:
    recording = RecordingMessages(any_db)
    first = await recording.send(_request())
    retried = _request().model_copy(update={"text": "a retry's text is not what was sent"})
    second = await recording.send(retried)
    other = await recording.send(_request("d-5-sms"))
    assert first == second != other
    async with any_db.session() as session:
        rows = (await session.scalars(select(SandboxMessageRow).order_by(SandboxMessageRow.id))).all()
    assert [(f"recorded-{r.id}", r.text) for r in rows] == [
        (first, "Иван Петрович, …"),  # the first attempt's record stands
        (other, "Иван Петрович, …"),
    ]


@pytest.mark.parametrize("channel", [Channel.SMS, Channel.ROBOT_CALL])
async def test_recording_channel_refuses_a_bad_number_without_quoting_it(
    any_db: Database, channel: Channel
) -> None:
    """Issue 12: the error reaches logs and the journey's history; the number in it is masked."""
    bad = _request().model_copy(update={"recipient": "+7916123456789000", "channel": channel})
    provider = RecordingMessages(any_db) if channel is Channel.SMS else ScriptedRobot(any_db)
    with pytest.raises(PermanentSendError) as refused:
        await provider.deliver(bad)
    assert refused.value.error_type == "InvalidPhone"
    assert "916123456789000" not in str(refused.value) and "+7916***9000" in str(refused.value)


async def test_database_portal_reads_the_renewal_status(any_db: Database) -> None:
    from datetime import UTC, datetime

    async with any_db.session() as session, session.begin():
        session.add(
            PortalRenewalRow(
                policy_number="P-1",
                expires_on=date(2027, 4, 20),
                draft=True,
                quote=False,
                paid=False,
                updated_at=datetime.now(UTC),
            )
        )
    portal = DatabasePortal(any_db)
    found = await portal.renewal_status(PortalQuery(policy_number="P-1", expires_on=date(2027, 4, 20)))
    missing = await portal.renewal_status(PortalQuery(policy_number="P-2", expires_on=date(2027, 4, 20)))
    assert (found.draft, found.quote, found.paid) == (True, False, False)
    assert (missing.draft, missing.quote, missing.paid) == (False, False, False)


@pytest.mark.skipif(POSTGRES_URL is None, reason="PostgreSQL only (RENEWALS_TEST_POSTGRES_URL)")
async def test_workers_starting_at_once_migrate_one_after_another(tmp_path: Path) -> None:
    """Several workers migrate the same fresh PostgreSQL schema at once: the advisory lock makes them
    take turns (without it, two create the same tables and one fails)."""
    import asyncio
    import uuid

    from sqlalchemy import text as sql

    assert POSTGRES_URL is not None
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = Database(POSTGRES_URL)
    async with admin.engine.begin() as connection:
        await connection.execute(sql(f'CREATE SCHEMA "{schema}"'))
    workers = [Database(POSTGRES_URL, schema=schema) for _ in range(4)]
    try:
        # without the lock they deadlock on each other's DDL (or one fails): bounded, so that fails too
        await asyncio.wait_for(asyncio.gather(*(db.migrate() for db in workers)), timeout=60)
        async with workers[0].engine.connect() as connection:
            version = (await connection.execute(sql("SELECT version_num FROM alembic_version"))).scalar_one()
        assert version == "0011"
    finally:
        for db in workers:
            await db.dispose()
        async with admin.engine.begin() as connection:
            await connection.execute(sql(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()
