"""The application journey end to end: scripted applications run side by side through the real
PartnerApplication and its activities on one time-skipping server, then each test checks one story.

Times are Moscow time; the support calendar is 09:00–18:00 on RU working days.
"""

from __future__ import annotations

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
from renewals.sla.store import load_applications
from starter.sla import parse_simulation, run_simulation, simulation_runs
from tests.sla_support import RecordingNotifier, time_skipping_env

TODAY = datetime(2026, 11, 23, tzinfo=UTC)
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
    def __init__(self, results: list[ApplicationStatus], db: Database, notifier: RecordingNotifier) -> None:
        self.by_id = {r.id: r for r in results}
        self.db = db
        self.notifier = notifier


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def batch(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Batch]:
    path: Path = tmp_path_factory.mktemp("sla-journey") / "sla.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.migrate()
    notifier = RecordingNotifier()
    simulation = parse_simulation({"applications": APPLICATIONS}, TODAY)
    async for env in time_skipping_env():
        results = await run_simulation(env, simulation_runs(simulation), SlaActivities(db, notifier))
        yield Batch(results, db, notifier)
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
        ("calculation", "check_data_and_payment", breach),
        ("calculation", "locate_blocker", breach),
        ("calculation", "hand_over", breach),
        ("calculation", "record_answer", utc("2027-04-07T11:40")),
    ]
    assert not result.process_flag


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
    assert clock(result, "calculation")["due"] == utc("2027-02-20T09:05")
    assert steps(result)[0] == ("calculation", "check_data_and_payment", utc("2027-02-20T09:05"))


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
    assert ok.escalations == []
    assert clock(late, "urgent_reaction")["breached"] is True
    assert steps(late)[0] == ("urgent_reaction", "check_data_and_payment", utc("2027-04-10T03:15"))
    assert steps(late)[-1] == ("urgent_reaction", "record_answer", utc("2027-04-10T03:20"))


async def test_full_checklist_with_repeated_breach_flag(batch: Batch) -> None:
    result = batch.by_id["repeated"]
    assert [(c, s) for c, s, _ in steps(result)] == [
        ("calculation", "check_data_and_payment"),
        ("calculation", "locate_blocker"),
        ("calculation", "hand_over"),
        ("calculation", "record_answer"),
        ("issuance", "check_data_and_payment"),
        ("issuance", "locate_blocker"),
        ("issuance", "hand_over"),
        ("issuance", "record_answer"),
        ("issuance", "raise_process_flag"),
    ]
    assert steps(result)[4][2] == utc("2027-04-14T13:00")
    assert steps(result)[-1][2] == utc("2027-04-14T14:00")
    assert result.breaches == 2 and result.process_flag
    findings = {(s.clock, s.step): s.finding for s in result.escalations}
    assert findings[("issuance", EscalationStepName.CHECK_DATA_AND_PAYMENT)] == (
        "payment received; responsible persons named"
    )
    assert findings[("calculation", EscalationStepName.LOCATE_BLOCKER)] == "calculation"
    assert findings[("issuance", EscalationStepName.LOCATE_BLOCKER)] == "sending"
    assert findings[("issuance", EscalationStepName.RECORD_ANSWER)] == "status moved to issued by partner"
    hand_overs = [n for n in batch.notifier.notices if n.dedup_key.startswith("realty-1/repeated/")]
    assert [(n.kind, n.to) for n in hand_overs] == [
        ("hand_over", "Анна"),
        ("hand_over", "Вера"),
        ("process_flag", "realty-1"),
    ]
    assert "deadline 14.04.2027 13:00 MSK" in hand_overs[1].text


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
