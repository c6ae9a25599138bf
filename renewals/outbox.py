"""The outbox: one row per (journey, touchpoint, channel), the audit log of every send.

A send first claims its row (pending), then calls the provider with the same dedup key, then marks
the row sent. A crash between the provider's accept and the commit leaves the row pending; the
retry finds it pending (`OutboxState.resumed`), so the provider is asked to reconcile (SMSC's status
query; VK and the robot drop a repeated key themselves) and nothing goes out twice.

The claim is the hot path of every send: one transaction, Core statements, that also reads the
opt-out list — a fresh row for an opted-out address is written `suppressed` at once. Concurrent
claims (and marks) share their transaction: renewals/db/group_commit.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, bindparam, select, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection
from temporalio.exceptions import ApplicationError

from renewals.activity_io import SendRequest, SuppressionRecord, dedup_key
from renewals.db.database import Database
from renewals.db.group_commit import GroupCommit
from renewals.db.tables import OptOutRow, OutboxRow
from renewals.db.upsert import insert_ignoring_conflict

OPTED_OUT = "OptedOut"
MARK_PATIENCE = 20.0  # seconds `mark` keeps trying (the send activity's start-to-close is 30 s)
log = logging.getLogger(__name__)
_MARK = (
    update(OutboxRow)
    .where(OutboxRow.dedup_key == bindparam("b_key"))
    .values(
        status=bindparam("b_status"),
        reason=bindparam("b_reason"),
        provider=bindparam("b_provider"),
        provider_message_id=bindparam("b_message_id"),
        updated_at=bindparam("b_at"),
    )
)


class SettledSend(ApplicationError):
    """A send that failed for good and, on this very attempt, settled its row as `status` ("failed":
    the provider refused it; "suppressed": the recipient opted out). The metrics count a settled send
    from this error itself: reading the row back after the activity raised cost a query per failure
    and let a scrape see the row settled before its count."""

    def __init__(self, message: str, *, type: str, status: str) -> None:
        super().__init__(message, type=type, non_retryable=True)
        self.status = status


@dataclass(frozen=True)
class OutboxState:
    status: str
    reason: str | None
    provider: str | None
    provider_message_id: str | None
    # The row was pending before this claim: an earlier attempt may have reached the provider.
    resumed: bool = False
    # A resumed row's recipient is on the opt-out list (the reason), not yet marked: the caller first
    # asks the provider whether the earlier attempt went out (see activities.renewal.send).
    opted_out: str | None = None
    # This claim created the row (a fresh row for an opted-out address is created `suppressed`).
    new: bool = False


class Outbox:
    def __init__(self, db: Database) -> None:
        self.db = db
        # Concurrent sends' claims and marks each share a transaction (renewals/db/group_commit.py).
        self._claims: GroupCommit[tuple[SendRequest, str | None], OutboxState] = GroupCommit(
            db.engine, self._claim_all
        )
        self._marks: GroupCommit[dict[str, Any], None] = GroupCommit(db.engine, self._mark_all)

    async def claim(self, request: SendRequest, opt_out_key: str | None = None) -> OutboxState:
        """Create the row unless it exists, and check the opt-out list, in one transaction.

        A new row is `pending`, or `suppressed` ("OptedOut: <reason>") when `opt_out_key` (see
        `OptOuts.key`) has opted out. An existing row comes back as it is; a pending one is `resumed`.
        """
        return await self._claims.submit((request, opt_out_key))

    async def _claim_all(
        self, connection: AsyncConnection, claims: Sequence[tuple[SendRequest, str | None]]
    ) -> list[OutboxState]:
        """A batch of claims in three statements: the opt-out list for every key, one insert of the
        new rows (the database says which were new), the existing rows read back."""
        now = datetime.now(UTC)
        keys = {key for _, key in claims if key}
        listed: dict[str, str] = {}
        if keys:
            found = await connection.execute(
                select(OptOutRow.address_hash, OptOutRow.reason).where(OptOutRow.address_hash.in_(keys))
            )
            listed = {row.address_hash: row.reason for row in found}
        rows: dict[str, dict[str, Any]] = {}
        for request, key in claims:
            opted_out = listed.get(key) if key else None
            rows.setdefault(
                request.dedup_key,
                {
                    "dedup_key": request.dedup_key,
                    "journey_id": request.journey_id,
                    "touchpoint": request.touchpoint,
                    "channel": request.channel.value,
                    "recipient": request.recipient,
                    "template": request.template,
                    "text": request.text,
                    "status": "pending" if opted_out is None else "suppressed",
                    "reason": None if opted_out is None else f"{OPTED_OUT}: {opted_out}",
                    "created_at": now,
                    "updated_at": now,
                },
            )
        inserted = set(
            (
                await connection.execute(
                    insert_ignoring_conflict(
                        self.db.dialect, OutboxRow, list(rows.values()), ["dedup_key"]
                    ).returning(OutboxRow.dedup_key)
                )
            ).scalars()
        )
        existing = [key for key in rows if key not in inserted]
        before: dict[str, Any] = {}
        if existing:
            found = await connection.execute(
                select(
                    OutboxRow.dedup_key,
                    OutboxRow.status,
                    OutboxRow.reason,
                    OutboxRow.provider,
                    OutboxRow.provider_message_id,
                ).where(OutboxRow.dedup_key.in_(existing))
            )
            before = {row.dedup_key: row for row in found}
        states = []
        first = set(inserted)  # a repeat of a new key in the same batch finds the row pending
        for request, key in claims:
            dedup, row = request.dedup_key, rows[request.dedup_key]
            if dedup in first:
                first.discard(dedup)
                states.append(OutboxState(row["status"], row["reason"], None, None, new=True))
                continue
            old = before.get(dedup)
            status, reason = (old.status, old.reason) if old else (row["status"], row["reason"])
            provider, message_id = (old.provider, old.provider_message_id) if old else (None, None)
            pending = status == "pending"
            opted_out = listed.get(key) if key and pending else None
            states.append(
                OutboxState(status, reason, provider, message_id, resumed=pending, opted_out=opted_out)
            )
        return states

    async def mark(
        self,
        key: str,
        status: str,
        *,
        reason: str | None = None,
        provider: str | None = None,
        provider_message_id: str | None = None,
    ) -> None:
        """Settle the row. Called right after a provider took (or refused) the message, so a database
        hiccup (SQLite's write lock under a burst, a dropped PostgreSQL connection) is retried here,
        for up to `MARK_PATIENCE`: failing the activity instead would make its retry ask the provider
        again — harmless for SMSC, VK and the robot, a second e-mail over SMTP."""
        values = {
            "b_key": key,
            "b_status": status,
            "b_reason": reason,
            "b_provider": provider,
            "b_message_id": provider_message_id,
            "b_at": datetime.now(UTC),
        }
        deadline = time.monotonic() + MARK_PATIENCE
        delay = 0.05
        while True:
            try:
                await self._marks.submit(values)
                return
            except (OperationalError, InterfaceError) as error:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("outbox %s not marked %s yet (%s): retrying", key, status, error.orig)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _mark_all(self, connection: AsyncConnection, marks: Sequence[dict[str, Any]]) -> list[None]:
        """A batch of marks: one UPDATE executed for every row (one round trip)."""
        await connection.execute(_MARK, list(marks))
        return [None] * len(marks)

    async def record(self, record: SuppressionRecord) -> None:
        """Keep a touchpoint that did not go out (suppressed or failed) with its reason; idempotent."""
        now = datetime.now(UTC)
        key = dedup_key(record.journey_id, record.touchpoint, record.channel)
        values = {
            "dedup_key": key,
            "journey_id": record.journey_id,
            "touchpoint": record.touchpoint,
            "channel": record.channel.value,
            "recipient": record.recipient,
            "template": record.template,
            "status": record.status,
            "reason": record.reason,
            "created_at": now,
            "updated_at": now,
        }
        async with self.db.session() as session, session.begin():
            await session.execute(insert_ignoring_conflict(self.db.dialect, OutboxRow, values, ["dedup_key"]))
            # A send that gave up (e.g. its deadline passed) left a pending row: settle it.
            await session.execute(
                update(OutboxRow)
                .where(OutboxRow.dedup_key == key, OutboxRow.status == "pending")
                .values(status=record.status, reason=record.reason, updated_at=now)
            )


class OutboxLedger:
    """`FailoverLedger` over the outbox row's `provider` column: the pin survives a crash and is seen
    by every worker, so a retry anywhere goes back to the provider that may hold the message.
    It pins only a claimed, still pending row (a settled row needs no pin)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def pinned(self, key: str) -> str | None:
        async with self.db.engine.connect() as connection:
            return (
                await connection.execute(select(OutboxRow.provider).where(OutboxRow.dedup_key == key))
            ).scalar_one_or_none()

    async def pin(self, key: str, provider: str) -> None:
        await self._set(key, provider, OutboxRow.dedup_key == key)

    async def release(self, key: str, provider: str) -> None:
        await self._set(key, None, OutboxRow.provider == provider)

    async def _set(self, key: str, provider: str | None, condition: ColumnElement[bool]) -> None:
        async with self.db.engine.begin() as connection:
            await connection.execute(
                update(OutboxRow)
                .where(OutboxRow.dedup_key == key, OutboxRow.status == "pending", condition)
                .values(provider=provider, updated_at=datetime.now(UTC))
            )
