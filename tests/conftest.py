"""Shared fixtures: databases (SQLite always; PostgreSQL when RENEWALS_TEST_POSTGRES_URL is set, as in
CI) and a fresh time-skipping Temporal environment with a journey worker per test."""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Connection, text

from renewals.db.database import Database, alembic_config
from tests.keys import TEST_KEY

# Every Settings() of the tests, the CLI run in-process and the workers and commands the tests start as
# subprocesses (they inherit os.environ) encrypt with the fixed test key, like tests.keys.TEST_CONVERTER;
# never the development keyring under .data/.
os.environ["RENEWALS_ENCRYPTION_KEYS"] = json.dumps([TEST_KEY])

POSTGRES_URL = os.environ.get("RENEWALS_TEST_POSTGRES_URL")
DATABASES = ["sqlite", *(["postgresql"] if POSTGRES_URL else [])]


@pytest.fixture(params=DATABASES)
async def any_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated database of each kind; PostgreSQL gets a private schema so runs never collide."""
    if request.param == "sqlite":
        db = Database(f"sqlite+aiosqlite:///{tmp_path}/test.db")
        await db.migrate()
        yield db
        await db.dispose()
        return
    assert POSTGRES_URL is not None
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = Database(POSTGRES_URL)
    async with admin.engine.begin() as connection:
        await connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    db = Database(POSTGRES_URL, schema=schema)
    await db.migrate()
    try:
        yield db
    finally:
        await db.dispose()
        async with admin.engine.begin() as connection:
            await connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/test.db")
    await db.migrate()
    yield db
    await db.dispose()


@asynccontextmanager
async def database_at(kind: str, tmp_path: Path, revision: str) -> AsyncIterator[Database]:
    """A database of `kind` migrated up to `revision` only, for a migration's test to fill with rows
    in the old schema and then `migrate()` (PostgreSQL in a private schema, dropped afterwards)."""
    admin = Database(POSTGRES_URL) if kind == "postgresql" and POSTGRES_URL else None
    schema = f"t_{uuid.uuid4().hex[:12]}"
    if admin is None:
        db = Database(f"sqlite+aiosqlite:///{tmp_path}/old-{revision}.db")
    else:
        async with admin.engine.begin() as connection:
            await connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        db = Database(admin.url, schema=schema)

    def upgrade(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with db.engine.begin() as connection:
        await connection.run_sync(upgrade)
    try:
        yield db
    finally:
        await db.dispose()
        if admin is not None:
            async with admin.engine.begin() as connection:
                await connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            await admin.dispose()


UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    """The worker, the stack and the webhook service configure logging for the whole process
    (`renewals.observability.logs.configure_logging`): a test that runs one in-process must not leave
    its handlers and levels to the tests after it (pytest's capture handlers on the root, httpx at INFO)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quiet = {
        name: logging.getLogger(name).level for name in ("httpx", "httpcore", "uvicorn", "uvicorn.error")
    }
    # uvicorn's default log config gives its loggers handlers on the sys.stderr of the moment: in a
    # test with capsys, a stream that is closed once the test ends.
    uvicorns = {
        name: (list(logging.getLogger(name).handlers), logging.getLogger(name).propagate)
        for name in UVICORN_LOGGERS
    }
    yield
    for name, (kept, propagate) in uvicorns.items():
        logging.getLogger(name).handlers[:] = kept
        logging.getLogger(name).propagate = propagate
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)
    for name, was in quiet.items():
        logging.getLogger(name).setLevel(was)
