"""Tables of measured outcomes: the holdout experiments (renewals/experiments), each as first registered, and
each journey's arm in it (both arms: the uplift compares them); agents' measured renewal rates (the gate)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, DateTime, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from renewals.db.tables import Base


class ExperimentRow(Base):
    """An experiment as it started: a change of share, groups, unit or salt later is refused."""

    __tablename__ = "experiments"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    share: Mapped[float] = mapped_column(Float)
    hold_out: Mapped[str] = mapped_column(Text)  # JSON list of groups/templates, as configured
    unit: Mapped[str] = mapped_column(String(16))
    salt_hash: Mapped[str] = mapped_column(String(64))  # sha256 of the salt: a changed salt is seen
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)
    registered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ExperimentArmRow(Base):
    """A journey's arm in one experiment, with what the report breaks the uplift down by."""

    __tablename__ = "experiment_arms"

    journey_id: Mapped[str] = mapped_column(String(160), primary_key=True)
    experiment: Mapped[str] = mapped_column(String(63), primary_key=True, index=True)
    arm: Mapped[str] = mapped_column(String(16))  # holdout, treatment
    policy_number: Mapped[str] = mapped_column(String(64))
    expires_on: Mapped[date] = mapped_column(Date, index=True)
    product: Mapped[str] = mapped_column(String(16))
    segment: Mapped[str] = mapped_column(String(16))
    agent_id: Mapped[str] = mapped_column(String(64))
    assigned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AgentMeasuredRateRow(Base):
    """An agent's renewal rate per line as this system measured it over a trailing window, kept only
    where it counts for the gate (enough finished policies, `RENEWALS_GATE_RATES=measured`)."""

    __tablename__ = "agent_measured_rates"

    agent_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    line: Mapped[str] = mapped_column(String(16), primary_key=True)
    rate: Mapped[float] = mapped_column(Float)
    secured: Mapped[int] = mapped_column(Integer)
    finished: Mapped[int] = mapped_column(Integer)
    window_days: Mapped[int] = mapped_column(Integer)
    computed_on: Mapped[date] = mapped_column(Date)
