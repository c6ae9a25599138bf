"""Data migrations: rows written under an old schema read back right under the new one, on SQLite and
PostgreSQL (each test fills a database migrated only up to the revision before, then migrates)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from renewals.db.database import Database
from renewals.intake.portfolio_store import load_policy, store_policies
from tests.conftest import DATABASES, database_at
from tests.factories import policy

EXPIRES = date(2027, 3, 1)
NOW = datetime(2026, 12, 1, tzinfo=UTC)


async def _insert(db: Database, table: str, rows: list[dict[str, object]]) -> None:
    columns = sa.table(table, *(sa.column(name) for name in rows[0]))
    async with db.engine.begin() as connection:
        await connection.execute(sa.insert(columns), rows)


async def _seed_people(db: Database, zone: str | None = None) -> int:
    """An agent and a client (with the client's time zone, before 0008); the client row's id."""
    await _insert(db, "agents", [{"id": "A-1", "name": "Петрова Анна", "phone": "+79035551234"}])
    client = {"last_name": "Иванов", "first_name": "Иван", "patronymic": None, "email": None, "vk_id": None}
    await _insert(
        db, "clients", [{**client, "phone": "+79161234567", **({"timezone": zone} if zone else {})}]
    )
    async with db.engine.connect() as connection:
        return int((await connection.execute(sa.text("SELECT id FROM clients"))).scalar_one())


def _term(client_id: int, number: str, product: str = "KASKO") -> dict[str, object]:
    return {
        "number": number,
        "product": product,
        "expires_on": EXPIRES,
        "first_prolongation_year": False,
        "renewal_centre": False,
        "client_id": client_id,
        "agent_id": "A-1",
        "cancelled": False,
    }


@pytest.mark.parametrize("kind", DATABASES)
async def test_0008_gives_each_term_its_clients_time_zone(kind: str, tmp_path: Path) -> None:
    async with database_at(kind, tmp_path, "0007") as db:
        client_id = await _seed_people(db, "Asia/Omsk")
        await _insert(db, "policies", [_term(client_id, "7100K/046/000101/26")])
        await db.migrate()
        stored = await load_policy(db, "7100K/046/000101/26", EXPIRES)
        assert stored is not None and stored.policy.client.timezone == "Asia/Omsk"
        # from now on a second policy of the same person keeps its own zone
        second = policy(number="7100K/046/000102/26", expires_on=EXPIRES)
        second = second.model_copy(
            update={
                "client": stored.policy.client.model_copy(update={"timezone": "Asia/Vladivostok"}),
                "agent": stored.policy.agent,
            }
        )
        await store_policies(db, [(second, False)])
        first_again = await load_policy(db, "7100K/046/000101/26", EXPIRES)
        assert first_again is not None and first_again.policy.client.timezone == "Asia/Omsk"


@pytest.mark.parametrize("kind", DATABASES)
async def test_0009_puts_stored_numbers_in_normal_form_and_merges_look_alike_terms(
    kind: str, tmp_path: Path
) -> None:
    async with database_at(kind, tmp_path, "0008") as db:
        client_id = await _seed_people(db)
        # Cyrillic К in a KASKO number, and one ОСАГО term stored twice: Latin without the space (old)
        # and already normal (a re-import after the normaliser)
        terms = [
            _term(client_id, "7100К/046/000101/26"),
            _term(client_id, "XXX0123456789", "OSAGO"),
            _term(client_id, "ХХХ 0123456789", "OSAGO"),
        ]
        for term in terms:  # one at a time: the ids in this order
            await _insert(db, "policies", [term | {"timezone": "Europe/Moscow"}])
        portal = {"expires_on": EXPIRES, "quote": False, "paid": False, "updated_at": NOW}
        await _insert(
            db,
            "portal_renewals",
            [
                {"policy_number": "XXX0123456789", **portal, "draft": True},
                {"policy_number": "ХХХ 0123456789", **portal, "draft": False, "paid": True},
            ],
        )
        await db.migrate()
        async with db.engine.connect() as connection:
            numbers = (await connection.execute(sa.text("SELECT number FROM policies ORDER BY id"))).all()
            renewals = (
                await connection.execute(sa.text("SELECT policy_number, draft, paid FROM portal_renewals"))
            ).all()
        assert [row[0] for row in numbers] == ["7100K/046/000101/26", "ХХХ 0123456789"]
        assert [(row[0], bool(row[1]), bool(row[2])) for row in renewals] == [("ХХХ 0123456789", True, True)]
        assert await load_policy(db, "7100K/046/000101/26", EXPIRES) is not None


@pytest.mark.parametrize("kind", DATABASES)
async def test_0008_downgrades_to_one_zone_per_client(kind: str, tmp_path: Path) -> None:
    from alembic import command

    from renewals.db.database import alembic_config

    async with database_at(kind, tmp_path, "0008") as db:
        client_id = await _seed_people(db)
        await _insert(db, "policies", [_term(client_id, "7100K/046/000101/26") | {"timezone": "Asia/Omsk"}])

        def downgrade(connection: sa.Connection) -> None:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.downgrade(config, "0007")

        async with db.engine.begin() as connection:
            await connection.run_sync(downgrade)
            zone = (await connection.execute(sa.text("SELECT timezone FROM clients"))).scalar_one()
        assert zone == "Asia/Omsk"
