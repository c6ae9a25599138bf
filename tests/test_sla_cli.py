"""`renewals sla ...` through the `renewals` tree: the simulate contract, refusals of bad input, report."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from renewals.db.database import Database
from renewals.sla.models import SlaStatus
from starter.cli import run
from starter.inputs import InputError
from starter.sla.inputs import parse_simulation
from starter.sla.simulate import CLOCK_KEYS, ESCALATION_KEYS, RESULT_KEYS
from tests.test_sla_report import snapshot

EXAMPLE = Path(__file__).parent.parent / "examples" / "sla_applications.json"
ISSUE_EXAMPLE = {
    "calendar": {"timezone": "Europe/Moscow", "open": "09:00", "close": "18:00"},
    "applications": [
        {
            "id": "R1",
            "partner": "realty-1",
            "urgent": False,
            "events": [
                {"at": "2027-03-05T17:55:00+03:00", "status": "submitted"},
                {"at": "2027-03-09T09:30:00+03:00", "status": "calculated"},
                {"at": "2027-03-10T11:00:00+03:00", "status": "paid"},
                {"at": "2027-03-10T11:40:00+03:00", "status": "issued"},
            ],
        }
    ],
}


def sla_main(argv: list[str]) -> int:
    return run(["sla", *argv])


def write(tmp_path: Path, document: Any) -> str:
    path = tmp_path / "applications.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return str(path)


async def test_simulate_prints_the_contract(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = await asyncio.to_thread(sla_main, ["simulate", write(tmp_path, ISSUE_EXAMPLE)])
    assert code == 0
    output = json.loads(capsys.readouterr().out)
    assert set(output) == {"results"}
    (result,) = output["results"]
    # Exactly the contract's keys: partner, status and the rest are in `renewals sla status`.
    assert set(result) == {"id", "clocks", "escalations", "time_in_status"} == set(RESULT_KEYS)
    assert all(
        set(c) == {"name", "started", "due", "stopped", "breached"} == set(CLOCK_KEYS)
        for c in result["clocks"]
    )
    assert all(set(e) == {"at", "clock", "step"} == set(ESCALATION_KEYS) for e in result["escalations"])
    assert result["id"] == "R1"
    assert result["clocks"] == [
        {
            "name": "calculation",
            "started": "2027-03-05T17:55:00+03:00",
            "due": "2027-03-09T09:10:00+03:00",
            "stopped": "2027-03-09T09:30:00+03:00",
            "breached": True,
        },
        {
            "name": "issuance",
            "started": "2027-03-10T11:00:00+03:00",
            "due": "2027-03-10T13:00:00+03:00",
            "stopped": "2027-03-10T11:40:00+03:00",
            "breached": False,
        },
    ]
    # The warning 10 business minutes in (Tue 09:05); the breach is checked one second after due.
    assert result["escalations"] == [
        {"at": "2027-03-09T09:05:00+03:00", "clock": "calculation", "step": "warning"},
        {"at": "2027-03-09T09:10:01+03:00", "clock": "calculation", "step": "check_data_and_payment"},
        {"at": "2027-03-09T09:10:01+03:00", "clock": "calculation", "step": "locate_blocker"},
        {"at": "2027-03-09T09:10:01+03:00", "clock": "calculation", "step": "hand_over"},
        {"at": "2027-03-09T09:30:00+03:00", "clock": "calculation", "step": "record_answer"},
    ]
    assert result["time_in_status"] == {"submitted": 2100, "calculated": 37800, "paid": 2400, "issued": 0}


def test_the_shipped_example_is_valid() -> None:
    simulation = parse_simulation(
        json.loads(EXAMPLE.read_text(encoding="utf-8")), datetime(2026, 11, 23, tzinfo=UTC)
    )
    assert len(simulation.applications) >= 3


def events(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"at": at, "status": status} for at, status in pairs]


@pytest.mark.parametrize(
    ("application", "message"),
    [
        (
            {"id": "B1", "partner": "p", "events": events(("2027-03-05T10:00:00+03:00", "sent"))},
            "application B1: events[0].status: Input should be",
        ),
        (
            {"partner": "p", "events": events(("2027-03-05T10:00:00+03:00", "submitted"))},
            "application #1: id: Field required",
        ),
        (
            {
                "id": "B3",
                "partner": "p",
                "events": events(
                    ("2027-03-05T10:00:00+03:00", "submitted"), ("2027-03-05T11:00:00+03:00", "issued")
                ),
            },
            "application B3: events[1].status: submitted → issued: a policy is issued only after payment",
        ),
        (
            {"id": "B4", "partner": "p", "events": events(("2025-03-05T10:00:00+03:00", "submitted"))},
            "application B4: events[0].at: 2025-03-05T10:00:00+03:00 is in the past",
        ),
        (
            {"id": "B5", "partner": "p", "events": events(("2027-03-05T10:00:00+03:00", "paid"))},
            "application B5: events[0].status: the first event must be submitted, not paid",
        ),
        (
            {
                "id": "B6",
                "partner": "p",
                "events": events(
                    ("2027-03-05T10:00:00+03:00", "submitted"), ("2027-03-05T09:00:00+03:00", "paid")
                ),
            },
            "application B6: events[1].at: earlier than the event before it",
        ),
        (
            {"id": "B7", "partner": "p", "events": events(("2027-03-05T10:00:00", "submitted"))},
            "application B7: events[0].at: needs a UTC offset",
        ),
        (["R1"], "application #1: (root): must be an object"),
        ("R1", "application #1: (root): must be an object"),
        (
            {"id": "B8", "partner": "p", "events": events(("2041-03-05T10:00:00+03:00", "submitted"))},
            "application B8: events[0].at: the support calendar cannot count 2041-03-05T10:00:00+03:00",
        ),
        (
            {
                "id": "B9",
                "partner": "p",
                "events": events(
                    ("2040-12-31T10:00:00+03:00", "submitted"), ("2040-12-31T17:00:00+03:00", "paid")
                ),
            },
            "application B9: events[1].at: the support calendar cannot count 2040-12-31T17:00:00+03:00: "
            "2041-01-01 is outside",
        ),
    ],
)
def test_malformed_applications_are_refused(application: Any, message: str) -> None:
    document = {"applications": [application]}
    with pytest.raises(InputError) as refused:
        parse_simulation(document, datetime(2026, 11, 23, tzinfo=UTC))
    assert str(refused.value).startswith(message)


@pytest.mark.parametrize(
    ("first", "second", "message"),
    [
        (
            ("realty-1", "R1"),
            ("realty-1", "r1"),
            "application r1: id: collides with application R1 of partner realty-1",
        ),
        (
            ("realty 1", "R1"),
            ("realty-1", "R1"),
            "application R1: id: collides with application R1 of partner realty 1",
        ),
        (
            ("realty-1", "R1"),
            ("realty-1", "R1"),
            "application R1: id: used more than once for partner realty-1",
        ),
    ],
)
def test_ids_that_normalise_alike_exit_2_with_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    first: tuple[str, str],
    second: tuple[str, str],
    message: str,
) -> None:
    submitted = events(("2027-03-05T10:00:00+03:00", "submitted"))
    document = {
        "applications": [
            {"id": app_id, "partner": partner, "events": submitted} for partner, app_id in (first, second)
        ]
    }
    assert sla_main(["simulate", write(tmp_path, document)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith(message)
    if first != second:
        assert "(both are workflow sla-realty-1-r1)" in err


def test_malformed_input_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    document = {"applications": [{"id": "Z9", "partner": "p", "events": []}]}
    assert sla_main(["simulate", write(tmp_path, document)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("application Z9: events:")
    assert (
        sla_main(["simulate", write(tmp_path, {"calendar": {"timezone": "Mars/X"}, "applications": []})]) == 2
    )
    assert "calendar: timezone" in capsys.readouterr().err


async def test_report_command_writes_csv_and_html(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/report.db"
    db = Database(url)
    await db.migrate()
    from renewals.sla.snapshots import save_application

    await save_application(
        db,
        snapshot(
            "realty-7",
            "c1",
            ("2027-04-19T10:00", SlaStatus.SUBMITTED),
            ("2027-04-19T10:10", SlaStatus.PAID),
            ("2027-04-19T10:40", SlaStatus.ISSUED),
            seconds=1800,
        ),
    )
    await db.dispose()
    csv_path, html_path = tmp_path / "w16.csv", tmp_path / "w16.html"
    args = ["report", "--week", "2027-W16", "--partner", "realty-7", "--database", url]
    code = await asyncio.to_thread(sla_main, [*args, "--csv", str(csv_path), "--html", str(html_path)])
    assert code == 0
    assert "realty-7" in capsys.readouterr().out
    assert "2027-W16,realty-7,mean_issuance_minutes,,30.0" in csv_path.read_text(encoding="utf-8")
    assert "<svg" in html_path.read_text(encoding="utf-8")
    assert await asyncio.to_thread(sla_main, ["report", "--week", "2027-53", "--database", url]) == 2
