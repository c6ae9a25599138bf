"""Business-time arithmetic on a support calendar: working hours in a time zone, on the working days
of the Russian production calendar (weekends and public holidays off, transferred Saturdays on).

All arithmetic is done on UTC instants: aware datetimes sharing one tzinfo subtract as wall-clock
times, which would be wrong across a DST change. Pure and deterministic, so workflow code may use it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

from renewals.sendwindow import is_working_day, zone
from renewals.sla.models import SupportCalendar

# The longest run of days off in the RU calendar is the New Year break (≈ 10 days); a year bounds
# any lookup and turns a broken configuration into an error instead of an endless loop.
MAX_DAYS = 366


class BusinessCalendar:
    """Open intervals of a support calendar and time measured only inside them."""

    def __init__(self, calendar: SupportCalendar) -> None:
        self.calendar = calendar
        self.tz = zone(calendar.timezone)

    def day_hours(self, day: date) -> tuple[datetime, datetime] | None:
        """The day's open interval as UTC instants, or None on a day off."""
        if not is_working_day(day):
            return None
        start = datetime.combine(day, self.calendar.open, tzinfo=self.tz).astimezone(UTC)
        end = datetime.combine(day, self.calendar.close, tzinfo=self.tz).astimezone(UTC)
        return start, end

    def intervals_from(
        self, moment: datetime, until: datetime | None = None
    ) -> Iterator[tuple[datetime, datetime]]:
        """Open intervals from `moment` on; the first is clipped to start at `moment`. With `until`,
        no day after its local date is looked at (so counting up to the calendar's last day works)."""
        moment = moment.astimezone(UTC)
        day = moment.astimezone(self.tz).date()
        last_day = until.astimezone(self.tz).date() if until is not None else None
        for _ in range(MAX_DAYS):
            if last_day is not None and day > last_day:
                return
            hours = self.day_hours(day)
            if hours is not None and hours[1] > moment:
                yield max(hours[0], moment), hours[1]
            day += timedelta(days=1)
        raise ValueError(f"no open hours within {MAX_DAYS} days of {moment.isoformat()}")

    def is_open(self, moment: datetime) -> bool:
        hours = self.day_hours(moment.astimezone(self.tz).date())
        return hours is not None and hours[0] <= moment < hours[1]

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The instant when `duration` of business time has passed since `start`."""
        remaining = duration
        for opened, closed in self.intervals_from(start):
            if closed - opened >= remaining:
                return opened + remaining
            remaining -= closed - opened
        raise AssertionError("unreachable: intervals_from raises first")

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Business time inside [start, end); zero if end is not after start."""
        total = timedelta(0)
        if end <= start:
            return total
        for opened, closed in self.intervals_from(start, until=end):
            if opened >= end:
                break
            total += min(closed, end) - opened
        return total


class Elapsed:
    """Time as one clock counts it: business hours on the calendar, or around the clock."""

    def __init__(self, calendar: BusinessCalendar, business_time: bool) -> None:
        self.calendar = calendar
        self.business_time = business_time

    def add(self, start: datetime, duration: timedelta) -> datetime:
        if self.business_time:
            return self.calendar.add(start, duration)
        return (start.astimezone(UTC) + duration).astimezone(UTC)

    def between(self, start: datetime, end: datetime) -> timedelta:
        if self.business_time:
            return self.calendar.between(start, end)
        return max(end - start, timedelta(0))

    def paused(self, moment: datetime) -> bool:
        return self.business_time and not self.calendar.is_open(moment)
