"""The weekly SLA report's numbers, per partner and overall, from application snapshots.

Definitions (stated here once, repeated in docs/sla.md):
- the week is an ISO week (`2027-W10`) in the support calendar's time zone; an application belongs to
  the week it was submitted in;
- time in status: business seconds per application and status (terminal statuses excluded), then
  the median (`statistics.median`) and the 90th percentile (nearest rank) over applications; the
  status an application is still in counts up to the report's cut-off (the end of the week, or now
  if the week is not over), not only up to its last stored snapshot;
- within SLA: no clock breached (a warning alone is not a breach);
- issuance time: business time from `paid` to `issued`, mean over issued applications;
- escalations: breaches (each starts one checklist); repeated breaches: process-flag steps (an
  application's second and later breach of the calculation or issuance clock);
- partners for a dedicated channel: two or more breached applications in the week;
- delay reasons: where each breach was stuck (checklist step 2) and the free-text reason of every
  status change made while a clock was in breach (e.g. "no policy template").
"""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter
from datetime import UTC, date, datetime, timedelta

from pydantic import BaseModel

from renewals.sendwindow import zone
from renewals.sla.business_time import BusinessCalendar
from renewals.sla.models import (
    ORDER,
    TERMINAL,
    ApplicationStatus,
    EscalationStepName,
    SlaStatus,
)

ALL_PARTNERS = "all"
# A partner with this many breached applications in one week gets the seed's step 5 at partner level.
DEDICATED_CHANNEL_BREACHED_APPLICATIONS = 2
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


def week_start(week: str) -> date:
    """Monday of an ISO week written `YYYY-Www`; ValueError with the expected form otherwise."""
    match = _WEEK.match(week)
    if match is None:
        raise ValueError(f"week {week!r}: expected YYYY-Www, e.g. 2027-W10")
    try:
        return date.fromisocalendar(int(match[1]), int(match[2]), 1)
    except ValueError as error:
        raise ValueError(f"week {week!r}: {error}") from None


def week_bounds(week: str, timezone: str) -> tuple[datetime, datetime]:
    """[Monday 00:00, next Monday 00:00) in the calendar's zone."""
    monday = week_start(week)
    tz = zone(timezone)
    start = datetime.combine(monday, datetime.min.time(), tzinfo=tz)
    return start, datetime.combine(monday + timedelta(days=7), datetime.min.time(), tzinfo=tz)


def p90(values: list[float]) -> float:
    """Nearest-rank 90th percentile: the smallest value at or above 90 % of the values."""
    ordered = sorted(values)
    return ordered[max(math.ceil(0.9 * len(ordered)) - 1, 0)]


class StatusStats(BaseModel):
    status: SlaStatus
    applications: int
    median_seconds: float
    p90_seconds: float


class GroupReport(BaseModel):
    """One partner, or all partners together."""

    scope: str
    applications: int
    within_sla: int
    within_sla_share: float | None
    statuses: list[StatusStats]
    delay_reasons: dict[str, int]
    issued: int
    mean_issuance_seconds: float | None
    median_issuance_seconds: float | None
    escalations: int
    repeated_breaches: int
    breached_applications: int = 0
    dedicated_channel: bool = False  # a partner with ≥ 2 breached applications this week
    one_liner: str


class WeeklyReport(BaseModel):
    week: str
    start: datetime
    end: datetime
    cutoff: datetime  # open statuses count up to here: the week's end, or now if earlier
    groups: list[GroupReport]  # overall first, then partners alphabetically
    dedicated_channel_partners: list[str] = []


def issuance_seconds(application: ApplicationStatus) -> float | None:
    paid, issued = application.entered(SlaStatus.PAID), application.entered(SlaStatus.ISSUED)
    if paid is None or issued is None:
        return None
    return BusinessCalendar(application.calendar).between(paid, issued).total_seconds()


def delay_reasons(application: ApplicationStatus) -> list[str]:
    """Where each breach was stuck, and why people said it was late: the reasons given with status
    changes made while a clock was in breach (from its due moment to its stop, inclusive)."""
    stuck = [
        step.finding or "unknown"
        for step in application.escalations
        if step.step is EscalationStepName.LOCATE_BLOCKER
    ]
    breached = [c for c in application.clocks if c.breached_at is not None]
    said = [
        period.reason.strip()
        for period in application.periods[1:]
        if period.reason
        and period.reason.strip()
        and any(
            c.breached_at is not None
            and c.breached_at <= period.entered
            and (c.stopped is None or period.entered <= c.stopped)
            for c in breached
        )
    ]
    return stuck + said


def time_in_status(application: ApplicationStatus, cutoff: datetime) -> dict[str, int]:
    """The snapshot's business seconds per status, with the status the application is still in
    counted up to `cutoff` (a snapshot is only as new as the journey's last change)."""
    seconds = dict(application.time_in_status)
    last = application.periods[-1]
    if application.finished or last.left is not None:
        return seconds
    until = BusinessCalendar(application.calendar).between(last.entered, cutoff)
    current = last.status.value
    seconds[current] = max(seconds.get(current, 0), int(until.total_seconds()))
    return seconds


def one_liner(median_issuance_seconds: float | None) -> str:
    """The partner-facing promise in the seed's words, from the median issuance time after payment."""
    tail = "Если дедлайн жёсткий — предупредите заранее, и мы включим ускоренный маршрут."
    if median_issuance_seconds is None:
        return f"За эту неделю выданных полисов нет. {tail}"
    hours = max(math.ceil(median_issuance_seconds / 3600), 1)
    if hours == 1:
        return f"Обычно полис будет готов в течение часа после оплаты. {tail}"
    unit = "часа" if hours % 10 == 1 and hours % 100 != 11 else "часов"
    return f"Обычно полис будет готов в течение {hours} {unit} после оплаты. {tail}"


def group_report(scope: str, applications: list[ApplicationStatus], cutoff: datetime) -> GroupReport:
    per_status: dict[SlaStatus, list[float]] = {}
    for application in applications:
        for status, seconds in time_in_status(application, cutoff).items():
            if SlaStatus(status) not in TERMINAL:
                per_status.setdefault(SlaStatus(status), []).append(float(seconds))
    statuses = [
        StatusStats(
            status=status,
            applications=len(values),
            median_seconds=float(statistics.median(values)),
            p90_seconds=p90(values),
        )
        for status in ORDER
        if (values := per_status.get(status))
    ]
    within = sum(1 for a in applications if not any(clock.breached for clock in a.clocks))
    breached = len(applications) - within
    issuance = [s for a in applications if (s := issuance_seconds(a)) is not None]
    reasons = Counter(reason for a in applications for reason in delay_reasons(a))
    median_issuance = float(statistics.median(issuance)) if issuance else None
    return GroupReport(
        scope=scope,
        applications=len(applications),
        within_sla=within,
        within_sla_share=within / len(applications) if applications else None,
        statuses=statuses,
        delay_reasons=dict(reasons.most_common()),
        issued=len(issuance),
        mean_issuance_seconds=statistics.fmean(issuance) if issuance else None,
        median_issuance_seconds=median_issuance,
        escalations=sum(a.breaches for a in applications),
        repeated_breaches=sum(
            1 for a in applications for s in a.escalations if s.step is EscalationStepName.RAISE_PROCESS_FLAG
        ),
        breached_applications=breached,
        dedicated_channel=scope != ALL_PARTNERS and breached >= DEDICATED_CHANNEL_BREACHED_APPLICATIONS,
        one_liner=one_liner(median_issuance),
    )


def build_report(
    applications: list[ApplicationStatus],
    week: str,
    timezone: str,
    partner: str | None = None,
    now: datetime | None = None,
) -> WeeklyReport:
    """The week's report; applications outside the week (or of another partner) are left out.
    `now` (default: the real clock) caps the cut-off of a week that is not over yet."""
    start, end = week_bounds(week, timezone)
    cutoff = min(end, now or datetime.now(UTC))
    chosen = [
        a
        for a in applications
        if (submitted := a.entered(SlaStatus.SUBMITTED)) is not None
        and start <= submitted < end
        and (partner is None or a.partner == partner)
    ]
    partners = sorted({a.partner for a in chosen})
    groups = [group_report(ALL_PARTNERS if partner is None else partner, chosen, cutoff)]
    if partner is None:
        groups += [group_report(p, [a for a in chosen if a.partner == p], cutoff) for p in partners]
    return WeeklyReport(
        week=week,
        start=start,
        end=end,
        cutoff=cutoff,
        groups=groups,
        dedicated_channel_partners=[g.scope for g in groups if g.dedicated_channel],
    )
