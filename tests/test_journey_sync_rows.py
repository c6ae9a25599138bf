"""`save_started` records thousands of started journeys in multi-row upserts (SQLite and, in CI,
PostgreSQL): every journey gets its row, a re-start overwrites the row's hash and its cancellation
flag, and a batch larger than one statement's chunk loses nothing."""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select, update

from renewals.db.database import Database
from renewals.db.tables_ops import JourneySyncRow
from renewals.intake.journey_sync import SAVE_CHUNK, policy_hash, save_started
from renewals.models import Policy, journey_id
from tests.factories import policy


def _policies(n: int, phone: str = "+79161234567") -> list[Policy]:
    return [policy("KASKO", number=f"7100K/001/{i:06d}/26", client={"phone": phone}) for i in range(n)]


async def test_thousands_of_started_journeys_are_recorded_and_a_restart_overwrites(any_db: Database) -> None:
    started = _policies(SAVE_CHUNK * 2 + 7)
    await save_started(any_db, started)
    async with any_db.session() as session, session.begin():
        assert await session.scalar(select(func.count()).select_from(JourneySyncRow)) == len(started)
        await session.execute(update(JourneySyncRow).values(cancelled_signalled=True))

    changed = _policies(3, phone="+79167654321")  # the first three again, with a new phone
    await save_started(any_db, changed)
    async with any_db.session() as session:
        rows = {row.journey_id: row for row in (await session.scalars(select(JourneySyncRow))).all()}
    assert len(rows) == len(started)
    for before, after in zip(started[:3], changed, strict=True):
        row = rows[journey_id(after.number, after.expires_on)]
        assert row.policy_hash == policy_hash(after) != policy_hash(before)
        assert row.cancelled_signalled is False
    untouched = rows[journey_id(started[5].number, date.fromisoformat("2027-04-20"))]
    assert untouched.policy_hash == policy_hash(started[5]) and untouched.cancelled_signalled is True
