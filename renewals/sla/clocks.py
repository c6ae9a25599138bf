"""SLA clocks: started by a status, stopped by a later one, with a warning and a breach moment.

A running clock's warning and breach instants are fixed when it starts (the calendar already accounts
for nights, weekends and holidays); the journey re-plans its timers whenever a status change starts or
stops a clock. Pure, so workflow code and tests use the same arithmetic.

"Within 15 minutes" includes the 15th minute: a clock is breached only when it is still running
*after* its due moment. The journey looks one second after `due` (the resolution of every output),
so a status change exactly at `due` is inside the SLA.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel

from renewals.sla.business_time import BusinessCalendar, Elapsed
from renewals.sla.models import ClockSpec, ClockView, SlaStatus

# How long after `due` the journey checks for a breach (see the module docstring).
BREACH_CHECK_DELAY = timedelta(seconds=1)


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
        """The next instant this clock needs the journey awake for, if any: its warning, then just
        after `due` (the breach check, see BREACH_CHECK_DELAY)."""
        if not self.running:
            return None
        if self.warn_at is not None and self.warned is None and self.warn_at < self.due:
            return self.warn_at
        if self.breached_at is None:
            return self.due + BREACH_CHECK_DELAY
        return None

    def warning_due(self, now: datetime) -> bool:
        """Its warning moment has come while it runs, before `due` (a warning after the breach
        would tell nobody anything in time)."""
        return (
            self.running
            and self.warn_at is not None
            and self.warned is None
            and self.warn_at <= now
            and self.warn_at < self.due
            and not self.overran(now)
        )

    def overran(self, now: datetime) -> bool:
        """Ran past `due` (strictly): still running after it, or stopped after it."""
        return self.breached_at is None and (self.stopped or now) > self.due


def start_clock(spec: ClockSpec, now: datetime, calendar: BusinessCalendar) -> ClockRun:
    elapsed = Elapsed(calendar, spec.business_time)
    warn_at = elapsed.add(now, timedelta(minutes=spec.warn_minutes)) if spec.warn_minutes else None
    return ClockRun(
        spec=spec, started=now, warn_at=warn_at, due=elapsed.add(now, timedelta(minutes=spec.limit_minutes))
    )


def calendar_problem(
    specs: list[ClockSpec], status: SlaStatus, moment: datetime, calendar: BusinessCalendar
) -> str | None:
    """Why the support calendar cannot count `moment` or plan the clocks `status` starts there
    (a year outside the production calendar), or None. Checked where input enters — the start, the
    update validator, the signal, the simulate input — so it never fails a workflow task."""
    try:
        calendar.day_hours(moment.astimezone(calendar.tz).date())
        for spec in specs:
            if spec.starts_at is status:
                start_clock(spec, moment, calendar)
    except ValueError as error:
        return f"the support calendar cannot count {moment.isoformat()}: {error}"
    return None


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
