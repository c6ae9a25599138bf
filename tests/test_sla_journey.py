"""The application journey end to end: scripted applications run side by side through the real
PartnerApplication and its activities on one time-skipping server, then each test checks one story.

Times are Moscow time; the support calendar is 09:00–18:00 on RU working days.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from activities.sla import SlaActivities
from renewals.db.database import Database
from renewals.sla.models import ApplicationStatus, EscalationStepName
from renewals.sla.report import build_report, week_bounds
from renewals.sla.snapshots import load_applications
from starter.sla.inputs import parse_simulation, simulation_runs
from starter.sla.simulate import run_simulation
from tests.sla_support import RecordingNotifier, time_skipping_env

TODAY = datetime(2026, 11, 23, tzinfo=UTC)
EXAMPLE = Path(__file__).parent.parent / "examples" / "sla_applications.json"
URGENT_LINE = "duty-line"
PEOPLE = {"client_contact": "Анна", "documents": "Борис", "payment": "Вера"}


def app(
    app_id: str, *events: tuple[str, str], partner: str = "realty-1", urgent: bool = False
) -> dict[str, Any]:
    return {
        "id": app_id,
        "partner": partner,
        "urgent": urgent,
        "responsible": PEOPLE,
        "events": [{"at": f"{at}:00+03:00", "status": status} for at, status in events],
    }


APPLICATIONS = [
    app(
        "normal",
        ("2027-04-07T10:00", "submitted"),
        ("2027-04-07T10:08", "calculated"),
        ("2027-04-07T11:00", "data_checked"),
        ("2027-04-07T11:30", "documents_received"),
        ("2027-04-07T12:00", "signed"),
        ("2027-04-07T12:30", "paid"),
        ("2027-04-07T13:15", "issued"),
    ),
    app(
        "calc-breach",
        ("2027-04-07T11:00", "submitted"),
        ("2027-04-07T11:40", "calculated"),
        ("2027-04-07T12:00", "cancelled"),
    ),
    app(
        "weekend",
        ("2027-03-05T17:55", "submitted"),
        ("2027-03-09T09:30", "calculated"),
        ("2027-03-12T17:30", "paid"),
        ("2027-03-15T10:00", "issued"),
    ),
    app(
        "saturday",
        ("2027-02-19T17:50", "submitted"),
        ("2027-02-20T09:20", "calculated"),
        ("2027-02-20T09:30", "cancelled"),
    ),
    app(
        "urgent-ok",
        ("2027-04-10T03:00", "submitted"),
        ("2027-04-10T03:12", "acknowledged"),
        ("2027-04-12T09:05", "calculated"),
        ("2027-04-12T09:30", "cancelled"),
        urgent=True,
    ),
    app(
        "urgent-late",
        ("2027-04-10T03:00", "submitted"),
        ("2027-04-10T03:20", "acknowledged"),
        ("2027-04-12T09:05", "calculated"),
        ("2027-04-12T09:30", "cancelled"),
        urgent=True,
    ),
    app(
        "repeated",
        ("2027-04-14T10:00", "submitted"),
        ("2027-04-14T10:40", "calculated"),
        ("2027-04-14T11:00", "paid"),
        ("2027-04-14T14:00", "issued"),
    ),
    app("abandoned", ("2027-04-14T10:00", "submitted")),
    app(
        "exact-due",
        ("2027-04-07T14:00", "submitted"),
        ("2027-04-07T14:15", "calculated"),  # exactly 15 business minutes
        ("2027-04-07T14:30", "cancelled"),
    ),
    app(
        "urgent-slow",  # the reaction and the calculation both late at 15:15: one slow start
        ("2027-04-07T15:00", "submitted"),
        ("2027-04-07T15:20", "acknowledged"),
        ("2027-04-07T15:30", "calculated"),
        ("2027-04-07T15:40", "cancelled"),
        urgent=True,
    ),
    # The shipped example's R2: urgent, submitted on the transferred working Saturday 20.02.2027.
    next(a for a in json.loads(EXAMPLE.read_text(encoding="utf-8"))["applications"] if a["id"] == "R2"),
    # The weekly report's known set, week 2027-W16.
    app(
        "a1",
        ("2027-04-19T10:00", "submitted"),
        ("2027-04-19T10:10", "calculated"),
        ("2027-04-19T11:00", "paid"),
        ("2027-04-19T11:40", "issued"),
        partner="partner-a",
    ),
    app(
        "a2",
        ("2027-04-19T12:00", "submitted"),
        ("2027-04-19T12:30", "calculated"),
        ("2027-04-19T13:00", "paid"),
        ("2027-04-19T15:30", "issued"),
        partner="partner-a",
    ),
    app(
        "b1",
        ("2027-04-20T10:00", "submitted"),
        ("2027-04-20T10:05", "calculated"),
        ("2027-04-20T10:30", "paid"),
        ("2027-04-20T11:20", "issued"),
        partner="partner-b",
    ),
    app("b2", ("2027-04-20T10:00", "submitted"), ("2027-04-20T10:05", "cancelled"), partner="partner-b"),
]


class Batch:
    def __init__(
        self,
        results: list[ApplicationStatus],
        db: Database,
        notifier: RecordingNotifier,
        urgent: RecordingNotifier,
    ) -> None:
        self.by_id = {r.id: r for r in results}
        self.db = db
        self.notifier = notifier  # the responsible persons' channel
        self.urgent = urgent  # the dedicated urgent line

    def notices(self, app_id: str, urgent: bool = False) -> list[tuple[str, str, str]]:
        notifier = self.urgent if urgent else self.notifier
        return [(n.kind, n.channel, n.to) for n in notifier.notices if f"/{app_id}/" in n.dedup_key]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def batch(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Batch]:
    path: Path = tmp_path_factory.mktemp("sla-journey") / "sla.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.migrate()
    notifier, urgent = RecordingNotifier(), RecordingNotifier()
    simulation = parse_simulation({"applications": APPLICATIONS}, TODAY)
    activities = SlaActivities(db, notifier, urgent_notifier=urgent, urgent_line=URGENT_LINE)
    async for env in time_skipping_env():
        results = await run_simulation(env, simulation_runs(simulation), activities)
        yield Batch(results, db, notifier, urgent)
    await db.dispose()


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def utc(text: str) -> str:
    """A Moscow wall time as the UTC text `iso` prints."""
    return iso(datetime.fromisoformat(f"{text}:00+03:00")) or ""


def clock(result: ApplicationStatus, name: str) -> dict[str, Any]:
    found = next(c for c in result.clocks if c.name == name)
    return {
        "due": iso(found.due),
        "stopped": iso(found.stopped),
        "breached": found.breached,
        "warned": iso(found.warned),
    }


def steps(result: ApplicationStatus) -> list[tuple[str, str, str | None]]:
    return [(s.clock, s.step.value, iso(s.at)) for s in result.escalations]


async def test_normal_application_stays_inside_sla(batch: Batch) -> None:
    result = batch.by_id["normal"]
    assert result.status.value == "issued" and result.finished
    assert clock(result, "calculation") == {
        "due": utc("2027-04-07T10:15"),
        "stopped": utc("2027-04-07T10:08"),
        "breached": False,
        "warned": None,
    }
    assert clock(result, "issuance")["breached"] is False
    assert [c.name for c in result.clocks] == ["calculation", "issuance"]  # no urgent clock
    assert result.escalations == [] and result.breaches == 0
    assert result.time_in_status == {
        "submitted": 480,
        "calculated": 3120,
        "data_checked": 1800,
        "documents_received": 1800,
        "signed": 1800,
        "paid": 2700,
        "issued": 0,
    }


async def test_calculation_breach_at_fifteen_business_minutes(batch: Batch) -> None:
    result = batch.by_id["calc-breach"]
    assert clock(result, "calculation") == {
        "due": utc("2027-04-07T11:15"),
        "stopped": utc("2027-04-07T11:40"),
        "breached": True,
        "warned": utc("2027-04-07T11:10"),
    }
    breach = utc("2027-04-07T11:15")
    assert steps(result) == [
        ("calculation", "warning", utc("2027-04-07T11:10")),
        ("calculation", "check_data_and_payment", breach),
        ("calculation", "locate_blocker", breach),
        ("calculation", "hand_over", breach),
        ("calculation", "record_answer", utc("2027-04-07T11:40")),
    ]
    assert not result.process_flag
    assert result.escalations[0].finding == (
        "warned Анна via responsible: warning: application calc-breach (realty-1), calculation SLA "
        "deadline 07.04.2027 11:15 MSK, waiting for calculation"
    )
    assert batch.notices("calc-breach") == [
        ("warning", "responsible", "Анна"),
        ("hand_over", "responsible", "Анна"),
    ]


async def test_a_change_exactly_at_the_due_moment_is_inside_sla(batch: Batch) -> None:
    result = batch.by_id["exact-due"]
    assert clock(result, "calculation") == {
        "due": utc("2027-04-07T14:15"),
        "stopped": utc("2027-04-07T14:15"),
        "breached": False,
        "warned": utc("2027-04-07T14:10"),
    }
    assert steps(result) == [("calculation", "warning", utc("2027-04-07T14:10"))] and result.breaches == 0


async def test_breach_spans_night_weekend_and_holiday_with_clock_paused(batch: Batch) -> None:
    result = batch.by_id["weekend"]
    # 5 min on Fri 05.03; Sat, Sun and Mon 08.03 (holiday) are paused; 10 min on Tuesday.
    assert clock(result, "calculation")["due"] == utc("2027-03-09T09:10")
    assert clock(result, "calculation")["breached"] is True
    # Issuance: 30 min on Fri 12.03, the weekend paused, warned at Mon 09:30, issued 10:00 < due 10:30.
    assert clock(result, "issuance") == {
        "due": utc("2027-03-15T10:30"),
        "stopped": utc("2027-03-15T10:00"),
        "breached": False,
        "warned": utc("2027-03-15T09:30"),
    }
    assert result.time_in_status["submitted"] == 35 * 60
    assert result.time_in_status["paid"] == 90 * 60  # 30 min on Friday + 60 on Monday


async def test_transferred_working_saturday_is_business_time(batch: Batch) -> None:
    result = batch.by_id["saturday"]
    # Fri 19.02 17:50: 10 minutes on Friday (the warning at closing), the breach on Saturday 20.02.
    assert clock(result, "calculation")["due"] == utc("2027-02-20T09:05")
    assert clock(result, "calculation")["breached"] is True
    assert steps(result)[:2] == [
        ("calculation", "warning", utc("2027-02-19T18:00")),
        ("calculation", "check_data_and_payment", utc("2027-02-20T09:05")),
    ]


async def test_breach_on_the_working_saturday_with_reasons_in_the_report(batch: Batch) -> None:
    """R2 of the shipped example: urgent, submitted Sat 20.02.2027 08:50 (a working Saturday)."""
    result = batch.by_id["R2"]
    assert clock(result, "urgent_reaction")["due"] == utc("2027-02-20T09:05")  # around the clock
    assert clock(result, "calculation") == {
        "due": utc("2027-02-20T09:15"),  # counted from Saturday's opening at 09:00
        "stopped": utc("2027-02-20T09:30"),
        "breached": True,
        "warned": utc("2027-02-20T09:10"),
    }
    # Mon 22.02 and Tue 23.02 are off: the issuance clock (Wed 11:00) breaches at 13:00.
    assert clock(result, "issuance")["breached"] is True and result.breaches == 3
    flags = [s for s in result.escalations if s.step is EscalationStepName.RAISE_PROCESS_FLAG]
    assert [s.clock for s in flags] == ["issuance"]  # the reaction breach is not a "repeat"
    start, end = week_bounds("2027-W07", "Europe/Moscow")
    stored = await load_applications(batch.db, start, end)
    report = build_report(stored, "2027-W07", "Europe/Moscow", now=end)
    overall = report.groups[0]
    assert overall.delay_reasons["no policy template"] == 1 and overall.delay_reasons["sending"] == 1
    assert overall.repeated_breaches == 1


async def test_urgent_applications_use_the_separate_urgent_channel(batch: Batch) -> None:
    assert batch.notices("urgent-late", urgent=True) == [
        ("warning", "urgent", URGENT_LINE),
        ("hand_over", "urgent", URGENT_LINE),
    ]
    assert batch.notices("urgent-late") == []  # nothing on the responsible persons' channel
    hand_over = next(
        n for n in batch.urgent.notices if n.dedup_key == "realty-1/urgent-late/urgent_reaction/hand_over"
    )
    assert hand_over.text.endswith("responsible: Анна")
    channels = {(s.step.value, s.channel) for s in batch.by_id["urgent-late"].escalations}
    assert {("warning", "urgent"), ("hand_over", "urgent")} <= channels
    assert batch.notices("repeated", urgent=True) == []  # a normal application never uses it


async def test_reaction_and_calculation_breach_together_are_not_repeated(batch: Batch) -> None:
    result = batch.by_id["urgent-slow"]
    assert clock(result, "urgent_reaction")["breached"] and clock(result, "calculation")["breached"]
    assert result.breaches == 2 and not result.process_flag
    assert EscalationStepName.RAISE_PROCESS_FLAG not in {s.step for s in result.escalations}


async def test_urgent_reaction_around_the_clock(batch: Batch) -> None:
    ok, late = batch.by_id["urgent-ok"], batch.by_id["urgent-late"]
    assert clock(ok, "urgent_reaction") == {
        "due": utc("2027-04-10T03:15"),
        "stopped": utc("2027-04-10T03:12"),
        "breached": False,
        "warned": utc("2027-04-10T03:10"),
    }
    assert clock(ok, "calculation") == {
        "due": utc("2027-04-12T09:15"),  # submitted on Saturday night: counts from Monday's opening
        "stopped": utc("2027-04-12T09:05"),
        "breached": False,
        "warned": None,
    }
    assert steps(ok) == [("urgent_reaction", "warning", utc("2027-04-10T03:10"))]
    assert ok.escalations[0].channel == "urgent"
    assert clock(late, "urgent_reaction")["breached"] is True
    assert steps(late)[1] == ("urgent_reaction", "check_data_and_payment", utc("2027-04-10T03:15"))
    assert steps(late)[-1] == ("urgent_reaction", "record_answer", utc("2027-04-10T03:20"))


async def test_full_checklist_with_repeated_breach_flag(batch: Batch) -> None:
    result = batch.by_id["repeated"]
    breach_1, breach_2 = utc("2027-04-14T10:15"), utc("2027-04-14T13:00")
    assert steps(result) == [
        ("calculation", "warning", utc("2027-04-14T10:10")),
        ("calculation", "check_data_and_payment", breach_1),
        ("calculation", "locate_blocker", breach_1),
        ("calculation", "hand_over", breach_1),
        ("calculation", "record_answer", utc("2027-04-14T10:40")),
        ("issuance", "warning", utc("2027-04-14T12:00")),  # the 60-minute target
        ("issuance", "check_data_and_payment", breach_2),
        ("issuance", "locate_blocker", breach_2),
        ("issuance", "hand_over", breach_2),
        ("issuance", "record_answer", utc("2027-04-14T14:00")),
        # Raised at the repeated breach itself, without waiting for step 4's answer at 14:00.
        ("issuance", "raise_process_flag", breach_2),
    ]
    assert result.breaches == 2 and result.process_flag
    findings = {(s.clock, s.step): s.finding for s in result.escalations}
    assert findings[("issuance", EscalationStepName.CHECK_DATA_AND_PAYMENT)] == (
        "payment received; responsible persons named"
    )
    assert findings[("calculation", EscalationStepName.LOCATE_BLOCKER)] == "calculation"
    assert findings[("issuance", EscalationStepName.LOCATE_BLOCKER)] == "sending"
    assert findings[("issuance", EscalationStepName.RECORD_ANSWER)] == "status moved to issued by partner"
    assert batch.notices("repeated") == [
        ("warning", "responsible", "Анна"),
        ("hand_over", "responsible", "Анна"),
        ("warning", "responsible", "Вера"),
        ("hand_over", "responsible", "Вера"),
        ("process_flag", "partner", "realty-1"),
    ]
    hand_over = next(
        n for n in batch.notifier.notices if n.dedup_key == "realty-1/repeated/issuance/hand_over"
    )
    assert "deadline 14.04.2027 13:00 MSK" in hand_over.text


async def test_unanswered_escalation_stays_awaited(batch: Batch) -> None:
    result = batch.by_id["abandoned"]
    assert result.status.value == "submitted" and result.closed_reason is not None
    assert steps(result)[-1] == ("calculation", "record_answer", None)
    assert clock(result, "calculation")["stopped"] is None


async def test_weekly_report_numbers_on_a_known_set(batch: Batch) -> None:
    start, end = week_bounds("2027-W16", "Europe/Moscow")
    stored = await load_applications(batch.db, start, end)
    assert sorted(a.id for a in stored) == ["a1", "a2", "b1", "b2"]
    report = build_report(stored, "2027-W16", "Europe/Moscow")
    overall, a, b = report.groups
    assert (overall.scope, a.scope, b.scope) == ("all", "partner-a", "partner-b")
    assert (overall.applications, overall.within_sla, overall.within_sla_share) == (4, 3, 0.75)
    assert (overall.escalations, overall.repeated_breaches) == (2, 1)
    assert overall.mean_issuance_seconds == pytest.approx(80 * 60)
    assert overall.delay_reasons == {"calculation": 1, "sending": 1}
    times = {s.status.value: (s.median_seconds, s.p90_seconds) for s in overall.statuses}
    assert times == {"submitted": (450, 1800), "calculated": (1800, 3000), "paid": (3000, 9000)}
    assert "в течение часа после оплаты" in overall.one_liner
    assert (a.within_sla_share, a.mean_issuance_seconds, a.repeated_breaches) == (0.5, 95 * 60, 1)
    assert "в течение 2 часов после оплаты" in a.one_liner
    assert (b.within_sla_share, b.escalations, b.mean_issuance_seconds) == (1.0, 0, 50 * 60)
    only_b = build_report(stored, "2027-W16", "Europe/Moscow", partner="partner-b")
    assert [g.scope for g in only_b.groups] == ["partner-b"] and only_b.groups[0].applications == 2
