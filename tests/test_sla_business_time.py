"""Business-time arithmetic, status moves and clock views: the pure core of the SLA journey."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from renewals.sendwindow import zone
from renewals.sla.business_time import BusinessCalendar, Elapsed
from renewals.sla.clocks import BREACH_CHECK_DELAY, calendar_problem, start_clock, view
from renewals.sla.models import SlaStatus, SupportCalendar, application_workflow_id, transition_error
from renewals.sla.targets import SlaTargets

MSK = zone("Europe/Moscow")
CAL = BusinessCalendar(SupportCalendar())


def msk(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=MSK)


def test_fifteen_minutes_inside_one_day() -> None:
    assert CAL.add(msk("2027-04-07 10:00"), timedelta(minutes=15)) == msk("2027-04-07 10:15")


def test_friday_evening_to_tuesday_over_weekend_and_march_8() -> None:
    # Fri 05.03 17:55 → 5 min on Friday; Sat, Sun and Mon 08.03 (holiday) are off; 10 min on Tuesday.
    due = CAL.add(msk("2027-03-05 17:55"), timedelta(minutes=15))
    assert due == msk("2027-03-09 09:10")
    assert CAL.between(msk("2027-03-05 17:55"), msk("2027-03-09 09:30")) == timedelta(minutes=35)


def test_transferred_working_saturday_counts() -> None:
    # 20.02.2027 is a transferred working Saturday; Mon 22.02 and Tue 23.02 are off.
    assert CAL.add(msk("2027-02-19 17:50"), timedelta(minutes=15)) == msk("2027-02-20 09:05")
    assert CAL.add(msk("2027-02-20 17:00"), timedelta(minutes=120)) == msk("2027-02-24 10:00")


def test_transferred_working_saturday_2025_11_01() -> None:
    # holidays: Sat 01.11.2025 is a working day (transferred), Mon 03.11 and Tue 04.11 are off.
    assert CAL.add(msk("2025-10-31 17:50"), timedelta(minutes=15)) == msk("2025-11-01 09:05")
    assert CAL.add(msk("2025-11-01 17:00"), timedelta(minutes=120)) == msk("2025-11-05 10:00")


def test_start_outside_hours_counts_from_the_next_opening() -> None:
    assert CAL.add(msk("2027-04-07 06:00"), timedelta(minutes=15)) == msk("2027-04-07 09:15")
    assert CAL.between(msk("2027-04-07 18:30"), msk("2027-04-08 08:00")) == timedelta(0)


def test_exactly_at_closing_is_due_at_closing() -> None:
    assert CAL.add(msk("2027-04-07 17:45"), timedelta(minutes=15)) == msk("2027-04-07 18:00")


def test_other_time_zone_calendar() -> None:
    vladivostok = BusinessCalendar(SupportCalendar(timezone="Asia/Vladivostok"))
    due = vladivostok.add(datetime(2027, 4, 7, 7, 55, tzinfo=UTC), timedelta(minutes=15))  # 17:55 local
    assert due == datetime(2027, 4, 7, 23, 10, tzinfo=UTC)  # Thu 09:10 local


def test_around_the_clock_elapsed_ignores_the_calendar() -> None:
    wall = Elapsed(CAL, business_time=False)
    assert wall.add(msk("2027-04-10 03:00"), timedelta(minutes=15)) == msk("2027-04-10 03:15")
    assert not wall.paused(msk("2027-04-10 03:00"))


def test_calendar_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="open must be earlier than close"):
        SupportCalendar(open="18:00", close="09:00")
    with pytest.raises(ValueError, match="unknown time zone"):
        SupportCalendar(timezone="Mars/Olympus")


@pytest.mark.parametrize(
    ("current", "new", "reason"),
    [
        (SlaStatus.SUBMITTED, SlaStatus.ISSUED, "only after payment"),
        (SlaStatus.SIGNED, SlaStatus.DATA_CHECKED, "goes backwards"),
        (SlaStatus.PAID, SlaStatus.PAID, "goes backwards or repeats"),
        (SlaStatus.CALCULATED, SlaStatus.ACKNOWLEDGED, "calculated → acknowledged goes backwards"),
        (SlaStatus.ISSUED, SlaStatus.CANCELLED, "already issued"),
        (SlaStatus.CANCELLED, SlaStatus.PAID, "already cancelled"),
    ],
)
def test_refused_transitions_say_why(current: SlaStatus, new: SlaStatus, reason: str) -> None:
    refusal = transition_error(current, new)
    assert refusal is not None and reason in refusal


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (SlaStatus.SUBMITTED, SlaStatus.ACKNOWLEDGED),
        (SlaStatus.SUBMITTED, SlaStatus.CALCULATED),
        (SlaStatus.CALCULATED, SlaStatus.PAID),
        (SlaStatus.PAID, SlaStatus.ISSUED),
        (SlaStatus.SIGNED, SlaStatus.CANCELLED),
    ],
)
def test_allowed_transitions(current: SlaStatus, new: SlaStatus) -> None:
    assert transition_error(current, new) is None


def test_clock_view_pauses_at_night_and_counts_business_time() -> None:
    calculation = SlaTargets().clocks()[0]
    run = start_clock(calculation, msk("2027-04-07 17:55"), CAL)
    assert run.warn_at == msk("2027-04-08 09:05") and run.due == msk("2027-04-08 09:10")
    night = view(run, msk("2027-04-07 23:00"), CAL)
    assert night.paused and night.elapsed_seconds == 300 and night.remaining_seconds == 600
    morning = view(run, msk("2027-04-08 09:03"), CAL)
    assert not morning.paused and morning.elapsed_seconds == 480 and not morning.breached


def test_workflow_ids_are_readable_and_stable() -> None:
    assert application_workflow_id("Realty 1", "R/77") == "sla-realty-1-r-77"


def test_exactly_at_due_is_not_a_breach() -> None:
    """ "Within 15 minutes" includes the 15th: only running past `due` breaches."""
    run = start_clock(SlaTargets().clocks()[0], msk("2027-04-07 10:00"), CAL)
    assert run.due == msk("2027-04-07 10:15")
    assert not run.overran(run.due)
    assert run.overran(run.due + timedelta(microseconds=1))
    assert run.next_moment() == run.warn_at  # the warning comes first
    run.warned = run.warn_at
    assert run.next_moment() == run.due + BREACH_CHECK_DELAY
    stopped_on_time = run.model_copy(update={"stopped": run.due})
    stopped_late = run.model_copy(update={"stopped": run.due + timedelta(seconds=1)})
    assert not stopped_on_time.overran(run.due + timedelta(hours=1))
    assert stopped_late.overran(run.due + timedelta(seconds=1))


def test_calendar_problem_names_the_uncovered_year() -> None:
    clocks = SlaTargets().clocks()
    assert calendar_problem(clocks, SlaStatus.PAID, msk("2040-12-28 10:00"), CAL) is None
    # 2040-12-31 17:00 + 120 business minutes reaches January 2041, outside the calendar's years.
    late = calendar_problem(clocks, SlaStatus.PAID, msk("2040-12-31 17:00"), CAL)
    assert late is not None and "2041-01-01 is outside the production calendar's years" in late
    early = calendar_problem(clocks, SlaStatus.CALCULATED, msk("2019-12-30 10:00"), CAL)
    assert early is not None and early.startswith("the support calendar cannot count 2019-12-30")


def test_counting_up_to_the_calendars_last_day_does_not_look_past_it() -> None:
    # 2041 is outside the calendar: counting inside 31.12.2040 must not peek at 01.01.2041.
    assert CAL.between(msk("2040-12-31 10:00"), msk("2040-12-31 17:00")) == timedelta(hours=7)
    assert CAL.between(msk("2040-12-31 10:00"), msk("2040-12-31 23:00")) == timedelta(hours=8)
