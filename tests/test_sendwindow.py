"""The send window in the client's local time: working days, weekends, holidays, transferred days."""

from __future__ import annotations

from datetime import date, datetime, time

import pytest

from renewals.sendwindow import SendWindow, is_working_day, zone

MSK = zone("Europe/Moscow")
VVO = zone("Asia/Vladivostok")
WINDOW = SendWindow()
EARLY = datetime(2027, 1, 1, tzinfo=MSK)


@pytest.mark.parametrize(
    ("day", "opens"),
    [
        (date(2027, 3, 22), time(8)),  # Monday
        (date(2027, 3, 21), time(9)),  # Sunday
        (date(2027, 11, 4), time(9)),  # Thursday, День народного единства
        (date(2027, 2, 20), time(8)),  # Saturday made a working day by transfer
        (date(2027, 5, 10), time(9)),  # Monday, День Победы moved from Sunday
    ],
)
def test_window_opens_by_the_production_calendar(day: date, opens: time) -> None:
    assert WINDOW.due_moment(day, EARLY, MSK) == datetime.combine(day, opens, tzinfo=MSK)


def test_transferred_saturday_is_a_working_day() -> None:
    assert is_working_day(date(2027, 2, 20)) and not is_working_day(date(2027, 2, 27))


def test_inside_the_window_it_goes_now() -> None:
    now = datetime(2027, 3, 22, 15, 30, tzinfo=MSK)
    assert WINDOW.due_moment(date(2027, 3, 22), now, MSK) == now


def test_after_the_window_closes_it_waits_for_the_next_window_never_skips() -> None:
    late = datetime(2027, 3, 22, 22, 0, tzinfo=MSK)  # Monday, the window closed at 22:00
    assert WINDOW.due_moment(date(2027, 3, 22), late, MSK) == datetime(2027, 3, 23, 8, tzinfo=MSK)
    friday_night = datetime(2027, 3, 26, 23, 0, tzinfo=MSK)
    assert WINDOW.next_open_moment(friday_night, MSK) == datetime(2027, 3, 27, 9, tzinfo=MSK)
    sunday_evening = datetime(2027, 3, 28, 20, 0, tzinfo=MSK)  # weekend window closes at 20:00
    assert WINDOW.next_open_moment(sunday_evening, MSK) == datetime(2027, 3, 29, 8, tzinfo=MSK)


def test_vladivostok_client_gets_vladivostok_hours() -> None:
    due = WINDOW.due_moment(date(2027, 3, 23), EARLY, VVO)
    assert due == datetime(2027, 3, 23, 8, tzinfo=VVO)
    assert due.astimezone(MSK) == datetime(2027, 3, 23, 1, tzinfo=MSK)  # night in Moscow, morning there


def test_configured_hours_are_respected() -> None:
    window = SendWindow(working_start=time(10), working_end=time(19))
    assert window.due_moment(date(2027, 3, 22), EARLY, MSK) == datetime(2027, 3, 22, 10, tzinfo=MSK)


def test_dates_outside_the_calendar_are_refused() -> None:
    with pytest.raises(ValueError, match="production calendar"):
        is_working_day(date(2045, 1, 1))
