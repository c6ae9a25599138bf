"""The outbox: one row per (journey, touchpoint, channel), the audit log of every send.

A send first claims its row (pending), then calls the provider with the same dedup key, then marks
the row sent. A crash between the provider's accept and the commit leaves the row pending; the
retry calls the provider again with the same key, and the provider's dedup answers with the message
it already has, so nothing goes out twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, select, update

from renewals.contracts import SendRequest, SuppressionRecord, dedup_key
from renewals.db.database import Database
from renewals.db.tables import OutboxRow
from renewals.db.upsert import insert_ignoring_conflict


@dataclass(frozen=True)
class OutboxState:
    status: str
    reason: str | None
    provider: str | None
    provider_message_id: str | None


class Outbox:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def claim(self, request: SendRequest) -> OutboxState:
        """Create the pending row if it does not exist; return the row's current state."""
        now = datetime.now(UTC)
        values = {
            "dedup_key": request.dedup_key,
            "journey_id": request.journey_id,
            "touchpoint": request.touchpoint,
            "channel": request.channel.value,
            "recipient": request.recipient,
            "template": request.template,
            "text": request.text,
            "status": "pending",
            "created_at": now,
            "updated_at": now,
        }
        async with self.db.session() as session, session.begin():
            await session.execute(insert_ignoring_conflict(self.db.dialect, OutboxRow, values, ["dedup_key"]))
            row = (
                await session.execute(select(OutboxRow).where(OutboxRow.dedup_key == request.dedup_key))
            ).scalar_one()
            return OutboxState(row.status, row.reason, row.provider, row.provider_message_id)

    async def mark(
        self,
        key: str,
        status: str,
        *,
        reason: str | None = None,
        provider: str | None = None,
        provider_message_id: str | None = None,
    ) -> None:
        async with self.db.session() as session, session.begin():
            await session.execute(
                update(OutboxRow)
                .where(OutboxRow.dedup_key == key)
                .values(
                    status=status,
                    reason=reason,
                    provider=provider,
                    provider_message_id=provider_message_id,
                    updated_at=datetime.now(UTC),
                )
            )

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
    by every worker, so a retry anywhere goes back to the provider that may hold the message."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def pinned(self, key: str) -> str | None:
        async with self.db.session() as session:
            return (
                await session.execute(select(OutboxRow.provider).where(OutboxRow.dedup_key == key))
            ).scalar_one_or_none()

    async def pin(self, key: str, provider: str) -> None:
        await self._set(key, provider, OutboxRow.dedup_key == key)

    async def release(self, key: str, provider: str) -> None:
        await self._set(key, None, OutboxRow.provider == provider)

    async def _set(self, key: str, provider: str | None, condition: ColumnElement[bool]) -> None:
        async with self.db.session() as session, session.begin():
            await session.execute(
                update(OutboxRow)
                .where(OutboxRow.dedup_key == key, OutboxRow.status == "pending", condition)
                .values(provider=provider, updated_at=datetime.now(UTC))
            )
