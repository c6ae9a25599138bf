"""The weekly report's storage (SQLite, and PostgreSQL when RENEWALS_TEST_POSTGRES_URL is set), its
week arithmetic and its three renderings."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest
import pytest_asyncio
from rich.console import Console

from renewals.db.database import Database
from renewals.sendwindow import zone
from renewals.sla.models import (
    ApplicationStatus,
    ClockView,
    EscalationStep,
    EscalationStepName,
    SlaStatus,
    StatusPeriod,
    SupportCalendar,
)
from renewals.sla.render import print_report, report_csv, report_html
from renewals.sla.report import build_report, one_liner, p90, week_bounds
from renewals.sla.snapshots import load_applications, save_application

MSK = zone("Europe/Moscow")
URLS = ["sqlite"] + (["postgres"] if os.environ.get("RENEWALS_TEST_POSTGRES_URL") else [])


def msk(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=MSK)


def snapshot(
    partner: str, app_id: str, *moves: tuple[str, SlaStatus], seconds: int = 600
) -> ApplicationStatus:
    """A finished application whose every non-final status lasted `seconds` of business time."""
    periods = [
        StatusPeriod(
            status=status,
            entered=msk(at),
            left=msk(moves[i + 1][0]) if i + 1 < len(moves) else msk(at),
            by="partner",
            business_seconds=seconds if i + 1 < len(moves) else 0,
        )
        for i, (at, status) in enumerate(moves)
    ]
    return ApplicationStatus(
        workflow_id=f"sla-{partner}-{app_id}",
        as_of=msk(moves[-1][0]),
        id=app_id,
        partner=partner,
        urgent=False,
        calendar=SupportCalendar(),
        status=moves[-1][1],
        finished=True,
        responsible_now=None,
        periods=periods,
        time_in_status={p.status.value: p.business_seconds for p in periods},
        clocks=[],
        escalations=[],
        breaches=0,
        process_flag=False,
    )


def breached(application: ApplicationStatus, clock: str, started: str, due: str, stopped: str | None) -> None:
    """Give a snapshot a breached clock and its checklist steps 1–3 (stuck at `calculation`)."""
    application.clocks.append(
        ClockView(
            name=clock,
            started=msk(started),
            warn_at=None,
            due=msk(due),
            stopped=None if stopped is None else msk(stopped),
            warned=None,
            breached=True,
            breached_at=msk(due),
            elapsed_seconds=0,
            remaining_seconds=0,
            paused=False,
        )
    )
    application.escalations.append(
        EscalationStep(
            clock=clock, step=EscalationStepName.LOCATE_BLOCKER, at=msk(due), finding="calculation"
        )
    )
    application.breaches += 1


@pytest_asyncio.fixture(params=URLS, loop_scope="session")
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    url = (
        f"sqlite+aiosqlite:///{tmp_path}/report.db"
        if request.param == "sqlite"
        else os.environ["RENEWALS_TEST_POSTGRES_URL"]
    )
    database = Database(url)
    await database.migrate()
    yield database
    await database.dispose()


async def test_snapshots_round_trip_and_select_the_week(db: Database) -> None:
    partner = f"p-{uuid.uuid4().hex[:12]}"  # the PostgreSQL database is shared: unique rows per run
    inside = snapshot(
        partner,
        "in",
        ("2027-04-19T10:00", SlaStatus.SUBMITTED),
        ("2027-04-19T10:10", SlaStatus.PAID),
        ("2027-04-19T10:50", SlaStatus.ISSUED),
    )
    sunday_night = snapshot(partner, "sun", ("2027-04-25T23:59", SlaStatus.SUBMITTED))
    next_week = snapshot(partner, "next", ("2027-04-26T00:00", SlaStatus.SUBMITTED))
    for status in (inside, sunday_night, next_week, inside):  # saving again replaces, never duplicates
        await save_application(db, status)
    start, end = week_bounds("2027-W16", "Europe/Moscow")
    loaded = await load_applications(db, start, end, partner)
    assert [a.id for a in loaded] == ["in", "sun"]
    assert loaded[0] == inside
    report = build_report(loaded, "2027-W16", "Europe/Moscow", partner)
    assert report.groups[0].issued == 1 and report.groups[0].mean_issuance_seconds == 40 * 60


def test_week_bounds_and_bad_weeks() -> None:
    assert week_bounds("2027-W10", "Europe/Moscow") == (msk("2027-03-08T00:00"), msk("2027-03-15T00:00"))
    for bad in ("2027-10", "2027-W54", "W10"):
        with pytest.raises(ValueError, match="week"):
            week_bounds(bad, "Europe/Moscow")


def test_percentile_and_promise() -> None:
    assert p90([float(v) for v in range(1, 11)]) == 9.0
    assert p90([5.0]) == 5.0
    assert one_liner(59 * 60).startswith("Обычно полис будет готов в течение часа после оплаты.")
    assert "в течение 21 часа" in one_liner(20.5 * 3600)
    assert "в течение 5 часов" in one_liner(4.2 * 3600)
    assert one_liner(None).startswith("За эту неделю выданных полисов нет.")


def test_renderings_carry_the_numbers() -> None:
    applications = [
        snapshot(
            "realty-<1>",
            "x",
            ("2027-04-19T10:00", SlaStatus.SUBMITTED),
            ("2027-04-19T10:10", SlaStatus.PAID),
            ("2027-04-19T11:00", SlaStatus.ISSUED),
            seconds=3000,
        )
    ]
    report = build_report(applications, "2027-W16", "Europe/Moscow")
    rows = report_csv(report).splitlines()
    assert rows[0] == "week,scope,metric,key,value"
    assert "2027-W16,all,within_sla_share,,1.0" in rows
    assert "2027-W16,realty-<1>,mean_issuance_minutes,,50.0" in rows
    assert "2027-W16,all,median_minutes,submitted,50.0" in rows
    page = report_html(report)
    assert page.startswith("<!doctype html>") and "<svg" in page and "<script" not in page
    assert "realty-&lt;1&gt;" in page and "realty-<1>" not in page  # escaped
    assert "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    console = Console(record=True, width=160)
    print_report(report, console)
    text = console.export_text()
    assert "week 2027-W16" in text and "1 (100%)" in text and "в течение часа" in text


def test_open_status_counts_up_to_the_cut_off() -> None:
    """A snapshot stored at 10:15 of an application still submitted: the report counts to its cut-off."""
    open_app = snapshot("p", "open", ("2027-04-19T10:00", SlaStatus.SUBMITTED))
    open_app.finished, open_app.periods[0].left = False, None
    open_app.time_in_status = {"submitted": 900}
    during_week = build_report([open_app], "2027-W16", "Europe/Moscow", now=msk("2027-04-19T11:00"))
    assert during_week.cutoff == msk("2027-04-19T11:00")
    assert during_week.groups[0].statuses[0].median_seconds == 3600
    after_week = build_report([open_app], "2027-W16", "Europe/Moscow", now=msk("2027-05-10T12:00"))
    assert after_week.cutoff == msk("2027-04-26T00:00")  # the end of the week
    # Mon 10:00–18:00 (8 h) and Tue–Fri 9 h each = 44 business hours.
    assert after_week.groups[0].statuses[0].median_seconds == 44 * 3600
    closed = open_app.model_copy(update={"finished": True})  # closed journeys keep their snapshot
    assert (
        build_report([closed], "2027-W16", "Europe/Moscow", now=msk("2027-04-19T11:00"))
        .groups[0]
        .statuses[0]
        .median_seconds
        == 900
    )


def test_delay_reasons_include_what_people_said_during_a_breach() -> None:
    late = snapshot(
        "p",
        "late",
        ("2027-04-19T10:00", SlaStatus.SUBMITTED),
        ("2027-04-19T10:40", SlaStatus.CALCULATED),
        ("2027-04-19T11:00", SlaStatus.CANCELLED),
    )
    late.periods[1].reason = "no policy template"  # given with the change that stopped the breach
    late.periods[2].reason = "the client chose another bank"  # after the breach was over
    breached(late, "calculation", "2027-04-19T10:00", "2027-04-19T10:15", "2027-04-19T10:40")
    report = build_report([late], "2027-W16", "Europe/Moscow", now=msk("2027-05-01T00:00"))
    assert report.groups[0].delay_reasons == {"calculation": 1, "no policy template": 1}
    assert "2027-W16,all,delay_reason,no policy template,1" in report_csv(report).splitlines()


def test_partners_with_two_breached_applications_get_a_dedicated_channel() -> None:
    def app(partner: str, app_id: str, breach: bool) -> ApplicationStatus:
        application = snapshot(
            partner,
            app_id,
            ("2027-04-19T10:00", SlaStatus.SUBMITTED),
            ("2027-04-19T10:40", SlaStatus.CANCELLED),
        )
        if breach:
            breached(application, "calculation", "2027-04-19T10:00", "2027-04-19T10:15", "2027-04-19T10:40")
        return application

    applications = [
        app("busy", "b1", True),
        app("busy", "b2", True),
        app("calm", "c1", True),
        app("calm", "c2", False),
    ]
    report = build_report(applications, "2027-W16", "Europe/Moscow", now=msk("2027-05-01T00:00"))
    overall, busy, calm = report.groups
    assert (busy.breached_applications, busy.dedicated_channel) == (2, True)
    assert (calm.breached_applications, calm.dedicated_channel) == (1, False)
    assert (overall.breached_applications, overall.dedicated_channel) == (3, False)
    assert report.dedicated_channel_partners == ["busy"]
    rows = report_csv(report).splitlines()
    assert "2027-W16,busy,dedicated_channel,,1" in rows and "2027-W16,calm,dedicated_channel,,0" in rows
    assert "two or more breached applications" in report_html(report).lower()
    console = Console(record=True, width=200)
    print_report(report, console)
    assert "dedicated support channel): busy" in console.export_text()
