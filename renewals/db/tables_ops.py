"""Tables of the operations layer: webhook receipts (idempotency and engagement facts), operator claims,
and what each running journey was last told about its policy (so intake pushes a change exactly once)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from renewals.db.tables import Base


class WebhookEventRow(Base):
    """One row per provider callback: `(source, event_id)` makes a repeated callback a no-op, and the
    row is the delivery/engagement fact the funnel report counts."""

    __tablename__ = "webhook_events"
    __table_args__ = (UniqueConstraint("source", "event_id", name="uq_webhook_events_source_event"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[str] = mapped_column(String(200))
    journey_id: Mapped[str] = mapped_column(String(160), index=True)
    channel: Mapped[str | None] = mapped_column(String(16))
    touchpoint: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    signal: Mapped[str | None] = mapped_column(String(64))
    processed: Mapped[bool] = mapped_column(Boolean, default=False)
    result: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class OperatorClaimRow(Base):
    """Who is working an operator task (operator_tasks itself only knows open/claimed/closed)."""

    __tablename__ = "operator_claims"

    task_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    operator: Mapped[str] = mapped_column(String(100))
    claimed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    note: Mapped[str | None] = mapped_column(Text)
    callback_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class JourneySyncRow(Base):
    """The policy a running journey last received (hash) and whether it was told of a cancellation."""

    __tablename__ = "journey_sync"

    journey_id: Mapped[str] = mapped_column(String(160), primary_key=True)
    policy_hash: Mapped[str] = mapped_column(String(64))
    cancelled_signalled: Mapped[bool] = mapped_column(Boolean, default=False)
    synced_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
