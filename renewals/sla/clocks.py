"""SLA clocks: started by a status, stopped by a later one, with a warning and a breach moment.

A running clock's warning and breach instants are fixed when it starts (the calendar already accounts
for nights, weekends and holidays); the journey re-plans its timers whenever a status change starts or
stops a clock. Pure, so workflow code and tests use the same arithmetic.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel

from renewals.sla.business_time import BusinessCalendar, Elapsed
from renewals.sla.models import ClockSpec, ClockView


class ClockRun(BaseModel):
    """The state of one clock inside the journey."""

    spec: ClockSpec
    started: datetime
    warn_at: datetime | None
    due: datetime
    stopped: datetime | None = None
    warned: datetime | None = None
    breached_at: datetime | None = None

    @property
    def running(self) -> bool:
        return self.stopped is None

    def next_moment(self) -> datetime | None:
        """The next instant this clock needs the journey awake for, if any."""
        if not self.running:
            return None
        if self.warn_at is not None and self.warned is None and self.warn_at < self.due:
            return self.warn_at
        if self.breached_at is None:
            return self.due
        return None


def start_clock(spec: ClockSpec, now: datetime, calendar: BusinessCalendar) -> ClockRun:
    elapsed = Elapsed(calendar, spec.business_time)
    warn_at = elapsed.add(now, timedelta(minutes=spec.warn_minutes)) if spec.warn_minutes else None
    return ClockRun(
        spec=spec, started=now, warn_at=warn_at, due=elapsed.add(now, timedelta(minutes=spec.limit_minutes))
    )


def view(run: ClockRun, now: datetime, calendar: BusinessCalendar) -> ClockView:
    """Elapsed and remaining time as the clock counts it; paused when outside business hours."""
    elapsed = Elapsed(calendar, run.spec.business_time)
    end = run.stopped or now
    used = elapsed.between(run.started, end)
    limit = timedelta(minutes=run.spec.limit_minutes)
    return ClockView(
        name=run.spec.name,
        started=run.started,
        warn_at=run.warn_at,
        due=run.due,
        stopped=run.stopped,
        warned=run.warned,
        breached=run.breached_at is not None,
        breached_at=run.breached_at,
        elapsed_seconds=int(used.total_seconds()),
        remaining_seconds=int(max(limit - used, timedelta(0)).total_seconds()),
        paused=run.running and elapsed.paused(now),
    )
