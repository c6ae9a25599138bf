"""The journey's bookkeeping as pure functions of its timeline: reported moments clamped into it,
where the application stood at a deadline, checklist step 4 answered by progress, repeated breaches,
time per status and the summary the Temporal UI shows. `workflows/sla.py` calls these; so can tests.
"""

from __future__ import annotations

from datetime import datetime

from renewals.sendwindow import zone
from renewals.sla.clocks import ClockRun
from renewals.sla.models import (
    ApplicationInput,
    EscalationStep,
    EscalationStepName,
    SlaStatus,
    StatusPeriod,
)


def clamp(moment: datetime | None, earliest: datetime | None, now: datetime) -> datetime:
    """A reported moment, but never in the future and never before the previous change."""
    if moment is None or moment > now:
        return now
    return moment if earliest is None or moment >= earliest else earliest


def status_at(periods: list[StatusPeriod], moment: datetime, default: SlaStatus) -> SlaStatus:
    """The status the application was in at `moment` (a change that came after it does not count)."""
    return next((p.status for p in reversed(periods) if p.entered <= moment), default)


def progress_after(periods: list[StatusPeriod], moment: datetime) -> StatusPeriod | None:
    """The first status entered after `moment`, if the application has moved on since."""
    return next((p for p in periods if p.entered > moment), None)


def answer_by_progress(step: EscalationStep, period: StatusPeriod) -> None:
    """Step 4 answered by the application's progress: the change that moved it on, and its time."""
    step.at = period.entered
    step.finding = f"status moved to {period.status.value} by {period.by}" + (
        f": {period.reason}" if period.reason else ""
    )


def awaiting_answer(steps: list[EscalationStep], clock: str | None) -> EscalationStep | None:
    """The oldest step 4 awaiting an answer, of `clock` or (None) of any clock."""
    return next(
        (
            s
            for s in steps
            if (clock is None or s.clock == clock)
            and s.step is EscalationStepName.RECORD_ANSWER
            and s.at is None
        ),
        None,
    )


def is_repeated(clocks: list[ClockRun], breached: ClockRun) -> bool:
    """Whether `breached` (already marked) is the application's second or later process breach.
    The urgent reaction clock runs from the same submission as the calculation clock: a late first
    reaction and a late calculation are one slow start, not a repeat."""
    if breached.spec.urgent_only:
        return False
    return sum(1 for c in clocks if c.breached_at is not None and not c.spec.urgent_only) >= 2


def time_in_status(periods: list[StatusPeriod]) -> dict[str, int]:
    """Business seconds per status, in the order the statuses were first entered."""
    total: dict[str, int] = {}
    for period in periods:
        total[period.status.value] = total.get(period.status.value, 0) + period.business_seconds
    return total


def details(
    application: ApplicationInput,
    status: SlaStatus,
    closed: str | None,
    clocks: list[ClockRun],
    steps: list[EscalationStep],
    process_flag: bool,
) -> str:
    """The Temporal UI's current details: the status, the clocks and the escalations."""
    tz = zone(application.calendar.timezone)
    lines = [
        f"**Application** {application.id} ({application.partner})"
        + (" — urgent" if application.urgent else ""),
        f"**Status** {status.value}" + (f" — closed: {closed}" if closed else ""),
    ]
    for clock in clocks:
        state = "breached" if clock.breached_at else ("running" if clock.running else "stopped")
        lines.append(f"**{clock.spec.name}** {state}, due {clock.due.astimezone(tz):%d.%m %H:%M %Z}")
    awaiting = [s.clock for s in steps if s.at is None]
    if awaiting:
        lines.append(f"**Awaiting answer** for {', '.join(awaiting)}")
    if process_flag:
        lines.append("**Process flag** raised (repeated breach)")
    return "\n\n".join(lines)
