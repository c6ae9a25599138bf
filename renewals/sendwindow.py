"""When a client may be written to or called: the send window in the client's local time.

Default hours follow the conservative Russian guideline: working days 08:00–22:00, weekends and
public holidays 09:00–20:00. Working days come from the Russian production calendar (`holidays`),
so a transferred working Saturday is a working day and a transferred day off is not. A touchpoint
due outside the window waits for the next one: defer, never skip, never backdate.

Pure and deterministic, so workflow code may use it.
"""

from __future__ import annotations

import zlib
from datetime import date, datetime, time, timedelta
from functools import cache
from typing import Annotated
from zoneinfo import ZoneInfo

import holidays
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from renewals.calendar_years import CALENDAR_YEARS

# Built eagerly at import: `holidays` imports and translates lazily on first use of a year, which the
# workflow sandbox forbids. Dates outside CALENDAR_YEARS are refused rather than guessed.
_RU_CALENDAR = holidays.country_holidays("RU", years=CALENDAR_YEARS)


@cache
def zone(name: str) -> ZoneInfo:
    """A time zone by name. Workflow code calls this rather than ZoneInfo, which its sandbox proxies."""
    return ZoneInfo(name)


def known_zone(name: str) -> str:
    """`name` if it names a time zone, else a ValueError that quotes it (a pydantic validator)."""
    try:
        zone(name)
    except (KeyError, ValueError) as error:  # ZoneInfoNotFoundError is a KeyError
        raise ValueError(f"unknown time zone {name!r}") from error
    return name


TimeZoneName = Annotated[str, AfterValidator(known_zone)]  # a model field holding an IANA zone name


def is_working_day(day: date) -> bool:
    """Russian production calendar: weekends and holidays off, transferred working Saturdays on."""
    if day.year not in CALENDAR_YEARS:
        raise ValueError(f"{day} is outside the production calendar's years {CALENDAR_YEARS}")
    return bool(_RU_CALENDAR.is_working_day(day))


class SendWindow(BaseModel):
    """Window hours; travels inside the journey input so workflow code never reads settings."""

    model_config = ConfigDict(frozen=True)

    working_start: time = time(8, 0)
    working_end: time = time(22, 0)
    non_working_start: time = time(9, 0)
    non_working_end: time = time(20, 0)
    # Spread the sends due at a window's opening over its first minutes, each journey at its own
    # stable offset: thousands of policies expiring on one day then do not all wake at 08:00:00 (the
    # providers, the renewal centre's phones and the worker get a steady stream instead of a spike).
    spread_minutes: int = Field(default=0, ge=0, le=240)

    def hours(self, day: date) -> tuple[time, time]:
        if is_working_day(day):
            return self.working_start, self.working_end
        return self.non_working_start, self.non_working_end

    def opening(self, day: date, tz: ZoneInfo) -> datetime:
        return datetime.combine(day, self.hours(day)[0], tzinfo=tz)

    def closing(self, day: date, tz: ZoneInfo) -> datetime:
        return datetime.combine(day, self.hours(day)[1], tzinfo=tz)

    def next_open_moment(self, earliest: datetime, tz: ZoneInfo) -> datetime:
        """The first instant at or after `earliest` that lies inside a window, in `tz`."""
        local = earliest.astimezone(tz)
        day = local.date()
        for _ in range(30):  # the longest run of days off is far shorter; this bounds a bad config
            start, end = self.opening(day, tz), self.closing(day, tz)
            if local < start:
                return start
            if local < end:
                return local
            day += timedelta(days=1)
        raise ValueError("no send window within 30 days: check the configured hours")

    def due_moment(self, day: date, not_before: datetime, tz: ZoneInfo, key: str = "") -> datetime:
        """When a touchpoint of local calendar `day` goes out: its day's window, or the next one.
        A send due at a window's opening moves `spread_offset(key)` into it (never past its close)."""
        due = self.next_open_moment(max(self.opening(day, tz), not_before), tz)
        local_day = due.astimezone(tz).date()
        if self.spread_minutes and key and due == self.opening(local_day, tz):
            latest = self.closing(local_day, tz) - timedelta(minutes=1)
            due = max(due, min(due + self.spread_offset(key), latest))
        return due

    def spread_offset(self, key: str) -> timedelta:
        """A stable offset in [0, spread_minutes) for `key` (a journey id): the same on every replay."""
        if not self.spread_minutes:
            return timedelta(0)
        return timedelta(seconds=zlib.crc32(key.encode()) % (self.spread_minutes * 60))
