"""The async engine and session factory, and schema migration through Alembic."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

MIGRATIONS = Path(__file__).with_name("migrations")
# aiosqlite's DEBUG lines print every statement with its bound values (phones, addresses, texts):
# a worker run at DEBUG must not write them, so its logger stops at INFO whatever the root level.
logging.getLogger("aiosqlite").setLevel(logging.INFO)


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN IMMEDIATE: a writer takes the lock up front, so two
    # concurrent read-then-write transactions wait for each other instead of failing with SQLITE_BUSY.
    dbapi_connection.isolation_level = None  # type: ignore[attr-defined]
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _begin_immediate(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def as_utc(moment: datetime) -> datetime:
    """A moment read back from a `DateTime(timezone=True)` column, aware: SQLite hands it back naive
    (it was stored in UTC), PostgreSQL aware. The one place that knows it."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


MIGRATION_LOCK = 0x72656E65  # the advisory lock's key: any constant the application owns


class Database:
    """One engine per process; activities open short sessions from `session()`."""

    def __init__(self, url: str, schema: str | None = None) -> None:
        """`schema` (PostgreSQL only) puts every table in that schema, e.g. one per test run."""
        self.url = url
        kwargs: dict[str, object] = {}
        if url.startswith("sqlite"):
            if ":memory:" in url or url.endswith("sqlite+aiosqlite://"):
                raise ValueError("use a SQLite file: concurrent activities need separate connections")
            _ensure_parent(url)
        else:
            kwargs.update(pool_size=10, max_overflow=10, pool_pre_ping=True)
            if schema:
                kwargs["connect_args"] = {"server_settings": {"search_path": schema}}
        # hide_parameters: a database error's text (logged, raised out of an activity) shows the SQL
        # but not the bound values, which are phones, addresses and message texts.
        self.engine: AsyncEngine = create_async_engine(url, hide_parameters=True, **kwargs)
        if url.startswith("sqlite"):
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            event.listen(self.engine.sync_engine, "begin", _begin_immediate)
        self.session = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        """ "sqlite" or "postgresql": which flavour of upsert to write."""
        return self.engine.dialect.name

    async def migrate(self) -> None:
        """Bring the schema to the newest migration (idempotent). On PostgreSQL the migration holds a
        transaction-scoped advisory lock: N workers starting at once (several hosts, a rolling
        deploy) migrate one after another — the first upgrades, the others find the schema at head."""

        def upgrade(connection: Connection) -> None:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

        async with self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            await connection.run_sync(upgrade)

    async def dispose(self) -> None:
        await self.engine.dispose()


def _ensure_parent(url: str) -> None:
    path = url.split(":///", 1)[-1]
    if path and path != url:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
