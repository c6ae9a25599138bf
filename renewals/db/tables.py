"""SQLAlchemy 2 tables. The Alembic migrations in `migrations/` create exactly this schema."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class RegionalCentreRow(Base):
    __tablename__ = "regional_centres"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(String(32))


class AgentRow(Base):
    __tablename__ = "agents"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(String(32))
    rate_kasko: Mapped[float | None] = mapped_column(Float)
    rate_osago: Mapped[float | None] = mapped_column(Float)
    rate_ifl: Mapped[float | None] = mapped_column(Float)


class ClientRow(Base):
    __tablename__ = "clients"
    __table_args__ = (UniqueConstraint("phone", "last_name", "first_name", name="uq_clients_identity"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    last_name: Mapped[str] = mapped_column(String(100))
    first_name: Mapped[str] = mapped_column(String(100))
    patronymic: Mapped[str | None] = mapped_column(String(100))
    phone: Mapped[str] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(254))
    vk_id: Mapped[str | None] = mapped_column(String(64))


class PolicyRow(Base):
    __tablename__ = "policies"
    __table_args__ = (UniqueConstraint("number", "expires_on", name="uq_policies_term"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    number: Mapped[str] = mapped_column(String(64), index=True)
    product: Mapped[str] = mapped_column(String(16))
    product_code: Mapped[str | None] = mapped_column(String(16))
    bank: Mapped[str | None] = mapped_column(String(16))
    bank_name: Mapped[str | None] = mapped_column(String(200))  # as the portfolio names it (0006)
    expires_on: Mapped[date] = mapped_column(Date, index=True)
    # The client's time zone as this term's row gives it: one person's policies may come from offices
    # in different regions, and each journey keeps the zone its own row named (migration 0008).
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/Moscow")
    first_prolongation_year: Mapped[bool] = mapped_column(Boolean, default=False)
    renewal_centre: Mapped[bool] = mapped_column(Boolean, default=False)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id"), index=True)
    regional_centre_id: Mapped[str | None] = mapped_column(ForeignKey("regional_centres.id"))
    cancelled: Mapped[bool] = mapped_column(Boolean, default=False)


class _Deduplicated:
    """A row written once per idempotency key: an activity's retry finds it and adds nothing.
    (`sort_order` keeps these two columns first, where the migrations put them.)"""

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True, sort_order=-2)
    dedup_key: Mapped[str] = mapped_column(String(200), unique=True, sort_order=-1)


class OutboxRow(_Deduplicated, Base):
    """One row per (journey, touchpoint, channel): the audit log of every send and its fate."""

    __tablename__ = "outbox"

    journey_id: Mapped[str] = mapped_column(String(160), index=True)
    touchpoint: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    recipient: Mapped[str | None] = mapped_column(String(254))
    template: Mapped[str] = mapped_column(String(64))
    text: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))  # pending, sent, failed, suppressed
    reason: Mapped[str | None] = mapped_column(Text)
    provider: Mapped[str | None] = mapped_column(String(64))
    # Indexed: a provider's delivery report names its own message id, and is matched by it.
    provider_message_id: Mapped[str | None] = mapped_column(String(128), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SandboxMessageRow(_Deduplicated, Base):
    """What the recording channels accepted (`renewals.channels.recording`): their 'provider side' log."""

    __tablename__ = "sandbox_messages"

    channel: Mapped[str] = mapped_column(String(16))
    recipient: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    accepted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class OperatorTaskRow(_Deduplicated, Base):
    """A call task for a renewal-centre operator; the journey waits for its outcome."""

    __tablename__ = "operator_tasks"

    journey_id: Mapped[str] = mapped_column(String(160), index=True)
    policy_number: Mapped[str] = mapped_column(String(64))
    centre_id: Mapped[str] = mapped_column(String(64), index=True)
    reason: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))  # open, claimed, closed
    outcome: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Why it closed without an operator's outcome: the journey ended (paid, opted out…) (0007).
    closed_reason: Mapped[str | None] = mapped_column(Text)


class PortalRenewalRow(Base):
    """The agent portal's view of a renewal (draft, quote, payment), for the database-backed portal."""

    __tablename__ = "portal_renewals"

    policy_number: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_on: Mapped[date] = mapped_column(Date, primary_key=True)
    draft: Mapped[bool] = mapped_column(Boolean, default=False)
    quote: Mapped[bool] = mapped_column(Boolean, default=False)
    paid: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class JourneyRow(Base):
    """Each journey's latest stage and how it ended, for reports and the agent dashboard."""

    __tablename__ = "journeys"

    id: Mapped[str] = mapped_column(String(160), primary_key=True)
    policy_number: Mapped[str] = mapped_column(String(64), index=True)
    expires_on: Mapped[date] = mapped_column(Date)
    agent_id: Mapped[str] = mapped_column(String(64), index=True)
    product: Mapped[str] = mapped_column(String(16))
    stage: Mapped[str] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class OptOutRow(Base):
    """A do-not-contact address (phone, e-mail or VK id), checked at every send across all journeys.
    Kept as a keyed hash, never in clear (`renewals.delivery.address_hash`; in `renewals simulate`'s
    per-journey lists, "<journey id>|<hash>")."""

    __tablename__ = "opt_outs"

    address_hash: Mapped[str] = mapped_column(String(254), primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
    journey_id: Mapped[str | None] = mapped_column(String(160))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The register (0007): what kind of address, masked as logs show it, where from and who listed it.
    kind: Mapped[str | None] = mapped_column(String(8))  # phone, email, vk
    masked: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[str | None] = mapped_column(String(32))  # journey, webhook:sms, cli, http, import, erasure
    added_by: Mapped[str | None] = mapped_column(String(100))


class OptOutChangeRow(Base):
    """Every addition to and removal from the do-not-contact list: who, why, when (a removal leaves
    the list, so only this row remembers it). Hashes and masked addresses only (0007)."""

    __tablename__ = "opt_out_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    address_hash: Mapped[str] = mapped_column(String(254), index=True)
    action: Mapped[str] = mapped_column(String(8))  # added, removed
    kind: Mapped[str | None] = mapped_column(String(8))
    masked: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str | None] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text)
    journey_id: Mapped[str | None] = mapped_column(String(160))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ChannelPauseRow(Base):
    """A channel paused because its provider refuses our account (no funds, bad credentials)."""

    __tablename__ = "channel_pauses"

    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    paused_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
