"""Shared fixtures: databases (SQLite always; PostgreSQL when RENEWALS_TEST_POSTGRES_URL is set, as in
CI) and a fresh time-skipping Temporal environment with a journey worker per test."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from renewals.db.database import Database
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
