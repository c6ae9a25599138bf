"""A database hiccup after the provider took a message must not become a second message: the outbox
keeps trying to record the send instead of failing the activity (whose retry would send again — over
SMTP, a second e-mail)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import OperationalError
from temporalio.testing import ActivityEnvironment

from activities.renewal import JourneyActivities
from renewals import outbox as outbox_module
from renewals.activity_io import SendRequest
from renewals.channels.base import Channels, SingleProvider
from renewals.channels.recording import DatabasePortal, ScriptedRobot
from renewals.db.database import Database
from renewals.db.tables import OutboxRow
from renewals.models import Channel


class CountingMail(SingleProvider):
    name = "smtp"

    def __init__(self) -> None:
        self.sent = 0

    async def send(self, request: SendRequest) -> str:
        self.sent += 1
        return f"<{request.dedup_key}@test>"


class Lock:
    """A `begin` listener that fails like SQLite's busy write lock `times` times once `armed`."""

    def __init__(self, times: int) -> None:
        self.left, self.armed = times, False

    def __call__(self, connection: Any) -> None:
        if self.armed and self.left > 0:
            self.left -= 1
            raise OperationalError("BEGIN IMMEDIATE", {}, Exception("database is locked"))


REQUEST = SendRequest(
    journey_id="renewal-X-20270420", touchpoint="d-30-email", channel=Channel.EMAIL,
    template="centre_email_30", recipient="ivan@example.org", text="…", subject="…",
)  # fmt: skip


async def run_send(tmp_path: Path, locked: int) -> tuple[CountingMail, str, Exception | None]:
    """One e-mail send whose outbox write after the provider's accept meets `locked` lock errors."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/mark.db")
    await db.migrate()
    mail, lock = CountingMail(), Lock(locked)
    event.listen(db.engine.sync_engine, "begin", lock)
    original = mail.send

    async def send_then_lock(request: SendRequest) -> str:
        result = await original(request)
        lock.armed = True  # the provider took it: now the database is busy
        return result

    mail.send = send_then_lock  # type: ignore[method-assign]
    acts = JourneyActivities(
        db, Channels({Channel.EMAIL: mail, Channel.ROBOT_CALL: ScriptedRobot(db)}, DatabasePortal(db))
    )
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, started_time=datetime.now(UTC))
    error: Exception | None = None
    try:
        await env.run(acts.send, REQUEST)
    except OperationalError as failed:
        error = failed
    lock.armed = False
    async with db.session() as session:
        status = (await session.execute(select(OutboxRow.status))).scalar_one()
    await db.dispose()
    return mail, status, error


async def test_a_locked_database_after_the_send_is_waited_out_not_resent(tmp_path: Path) -> None:
    mail, status, error = await run_send(tmp_path, locked=3)
    assert (mail.sent, status, error) == (1, "sent", None)


async def test_mark_gives_up_after_its_patience(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox_module, "MARK_PATIENCE", 0.2)
    mail, status, error = await run_send(tmp_path, locked=1000)
    assert mail.sent == 1 and status == "pending" and isinstance(error, OperationalError)
