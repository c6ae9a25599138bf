"""Tables the weekly SLA report reads: one row per application (its latest snapshot) and its status
periods (for SQL over time in status). The 0002 migration creates exactly these."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from renewals.db.tables import Base


class SlaApplicationRow(Base):
    __tablename__ = "sla_applications"

    workflow_id: Mapped[str] = mapped_column(String(160), primary_key=True)
    application_id: Mapped[str] = mapped_column(String(64))
    partner: Mapped[str] = mapped_column(String(64), index=True)
    urgent: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(32))
    submitted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    issued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    breaches: Mapped[int] = mapped_column(Integer)
    process_flag: Mapped[bool] = mapped_column(Boolean)
    snapshot: Mapped[str] = mapped_column(Text)  # ApplicationStatus as JSON: the report's source
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SlaStatusPeriodRow(Base):
    __tablename__ = "sla_status_periods"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workflow_id: Mapped[str] = mapped_column(String(160), index=True)
    status: Mapped[str] = mapped_column(String(32))
    entered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    left_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    business_seconds: Mapped[int] = mapped_column(Integer)
    changed_by: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text)
