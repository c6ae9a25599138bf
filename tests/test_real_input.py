"""Input that real portfolios contain (issue 13): a mortgage's bank by its name, and the rows and
scenarios intake must refuse up front — a client phone or e-mail that is not one, a cover already
ended — through the real command paths (`renewals import` in-process as tests/test_intake_cli.py runs
it, `renewals simulate` as a subprocess as tests/test_simulate_cli.py does)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from renewals.db.database import Database
from renewals.intake.portfolio_store import load_policy
from renewals.models import Bank, Policy, bank_of, normal_policy_number
from renewals.rules import touchpoints_for
from renewals.settings import Settings
from starter.ops import ops
from tests.factories import policy_dict, scenario

SBER_NAMES = [
    "SBER", "sber", "Сбер", "СБЕР", "Сбербанк", "СберБанк", "сбербанк", "ПАО Сбербанк", "Сбербанк России",
    "ПАО Сбербанк России", 'ПАО "Сбербанк"', "ПАО «Сбербанк России»", "Сбербанк (ПАО)", "Sberbank",
    "Sberbank of Russia", "SBERBANK PJSC", "Публичное акционерное общество «Сбербанк России»", "  Сбер Банк ",
]  # fmt: skip
OTHER_NAMES = [
    "OTHER", "other", "ВТБ", "Банк ВТБ (ПАО)", "Газпромбанк", "АО «Россельхозбанк»", "Альфа-Банк",
    "Сбербанк Лизинг", "Сбер Страхование", "VTB Bank",
]  # fmt: skip


@pytest.mark.parametrize("name", SBER_NAMES)
def test_sber_is_recognised_by_its_usual_spellings(name: str) -> None:
    assert bank_of(name) is Bank.SBER


@pytest.mark.parametrize("name", OTHER_NAMES)
def test_every_other_name_is_another_bank(name: str) -> None:
    assert bank_of(name) is Bank.OTHER


def test_a_policy_keeps_the_name_as_given_and_the_rules_get_its_kind() -> None:
    sber = Policy.model_validate(policy_dict("MORTGAGE", number="9100M/777/000104", bank="ПАО Сбербанк"))
    assert (sber.bank, sber.bank_name) == (Bank.SBER, "ПАО Сбербанк")
    assert [tp.rule.template for tp in touchpoints_for(sber)] == ["base_mortgage_sber_45", "base_mortgage_5"]
    vtb = Policy.model_validate(policy_dict("MORTGAGE", number="9100M/777/000104", bank="ВТБ"))
    assert (vtb.bank, vtb.bank_name) == (Bank.OTHER, "ВТБ")
    assert [tp.rule.template for tp in touchpoints_for(vtb)] == ["base_mortgage_30", "base_mortgage_5"]
    # The codes stay codes (no name), and a dump reads back as it was (a Temporal payload, a stored row).
    code = Policy.model_validate(policy_dict("MORTGAGE", number="9100M/777/000104", bank="SBER"))
    assert (code.bank, code.bank_name) == (Bank.SBER, None)
    assert Policy.model_validate(sber.model_dump(mode="json")) == sber
    assert Policy.model_validate(vtb.model_dump(mode="json")) == vtb


# ---- renewals import ------------------------------------------------------------------------------

HEADER = ["kind", "number", "product", "bank", "expires_on", "last_name", "first_name", "phone", "email",
          "agent_id", "agent_name", "agent_phone"]  # fmt: skip
AGENT_ROW = {"kind": "agent", "agent_id": "A-1", "agent_name": "Петрова Анна", "agent_phone": "+79031112233"}


def _row(number: int, **values: str) -> dict[str, str]:
    ends = date.today() + timedelta(days=60)
    return {
        "kind": "policy",
        "number": f"9100M/777/{number:06d}",
        "product": "MORTGAGE",
        "bank": "ВТБ",
        "expires_on": ends.isoformat(),
        "last_name": "Иванов",
        "first_name": f"Иван{number}",
        "phone": f"+791612{number:05d}",
        "email": f"ivan{number}@example.org",
        "agent_id": "A-1",
    } | values


def _write(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, HEADER)
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/import.db")


async def test_import_takes_any_bank_name_and_stores_it(
    tmp_path: Path, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    names = {1: "ВТБ", 2: "ПАО Сбербанк", 3: "Сбербанк России", 4: "Газпромбанк", 5: "Sberbank", 6: "SBER"}
    source = _write(tmp_path / "banks.csv", [AGENT_ROW, *(_row(n, bank=b) for n, b in names.items())])
    assert await ops(["import", "--no-sync", str(source)], settings) == 0
    assert "rejected: 0" in capsys.readouterr().out
    db = Database(settings.database_url)
    try:
        ends = date.today() + timedelta(days=60)
        stored = {}
        for number in names:
            found = await load_policy(db, normal_policy_number(f"9100M/777/{number:06d}"), ends)
            assert found is not None
            stored[number] = (found.policy.bank, found.policy.bank_name)
    finally:
        await db.dispose()
    assert stored == {
        1: (Bank.OTHER, "ВТБ"),
        2: (Bank.SBER, "ПАО Сбербанк"),
        3: (Bank.SBER, "Сбербанк России"),
        4: (Bank.OTHER, "Газпромбанк"),
        5: (Bank.SBER, "Sberbank"),
        6: (Bank.SBER, None),  # a code, as before
    }
    # The same file again changes nothing: the name is part of the stored term, compared as given.
    assert await ops(["import", "--no-sync", str(source)], settings) == 0
    assert "unchanged: nothing stored" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("changes", "field", "reason", "clear"),
    [
        ({"phone": "12345"}, "phone", "is not a valid phone number", "12345"),
        ({"phone": "+79161234"}, "phone", "is not a valid phone number", "+79161234"),
        ({"email": "ivan.example.org"}, "email", "is not an e-mail address", "ivan.example.org"),
        ({"email": "ivan@example"}, "email", "is not an e-mail address", "ivan@example"),
        (
            {"expires_on": (date.today() - timedelta(days=1)).isoformat()},
            "expires_on",
            "is in the past",
            None,
        ),
        ({"bank": ""}, "bank", "needs its bank", None),
    ],
    ids=["short phone", "phone too short", "e-mail without @", "e-mail without domain", "past", "no bank"],
)
async def test_import_rejects_the_row_with_its_line_field_and_reason(
    tmp_path: Path,
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
    changes: dict[str, str],
    field: str,
    reason: str,
    clear: str | None,
) -> None:
    source = _write(tmp_path / "bad.csv", [AGENT_ROW, _row(1), _row(2, **changes)])
    assert await ops(["import", "--no-sync", str(source)], settings) == 1  # done, with a rejected row
    captured = capsys.readouterr()
    [line] = [text for text in captured.err.splitlines() if text.startswith(f"{source}:")]
    assert line.startswith(f"{source}:4: {field}: ") and reason in line, line  # line 4: the header is 1
    assert "rejected: 1" in captured.out
    if clear is not None:
        assert clear not in captured.err + captured.out  # masked, never in clear
    rejects = (tmp_path / "bad.rejects.csv").read_text(encoding="utf-8")
    assert "9100M/777/000002" in rejects and "9100M/777/000001" not in rejects


# ---- renewals simulate ----------------------------------------------------------------------------


def run_simulate(tmp_path: Path, scenarios: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "scenarios.json"
    path.write_text(json.dumps({"scenarios": scenarios}, ensure_ascii=False), encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "starter.cli", "simulate", str(path)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _mortgage(sid: str, bank: str) -> dict[str, Any]:
    return scenario(sid, "MORTGAGE", bank=bank, number="9100M/777/000104")


def test_simulate_accepts_bank_names_and_sends_what_the_codes_send(tmp_path: Path) -> None:
    banks = {"code-sber": "SBER", "pao-sber": "ПАО Сбербанк", "sber-rossii": "Сбербанк России",
             "latin": "Sberbank", "code-other": "OTHER", "vtb": "ВТБ", "gazprom": "Газпромбанк"}  # fmt: skip
    done = run_simulate(tmp_path, [_mortgage(sid, bank) for sid, bank in banks.items()])
    assert done.returncode == 0, done.stderr
    results = {r["id"]: r for r in json.loads(done.stdout)["results"]}

    def sends(sid: str) -> list[tuple[int, str, str]]:
        return [
            (e["day"], e["template"], e["text"]) for e in results[sid]["timeline"] if e["status"] == "sent"
        ]

    sber, other = sends("code-sber"), sends("code-other")
    assert [(day, template) for day, template, _ in sber] == [
        (-45, "base_mortgage_sber_45"),
        (-5, "base_mortgage_5"),
    ]
    assert [(day, template) for day, template, _ in other] == [
        (-30, "base_mortgage_30"),
        (-5, "base_mortgage_5"),
    ]
    for sid in ("pao-sber", "sber-rossii", "latin"):
        assert sends(sid) == sber, sid  # word for word: the bank's name is never in a text
    for sid in ("vtb", "gazprom"):
        assert sends(sid) == other, sid


@pytest.mark.parametrize(
    ("client", "expires_on", "now", "message", "clear"),
    [
        (
            {"phone": "12345"},
            None,
            None,
            "scenario bad: policy.client.phone: '12***' is not a valid phone",
            "12345",
        ),
        ({"phone": "+1 202 555 0143"}, None, None, "scenario bad: policy.client.phone:", "202 555 0143"),
        (
            {"email": "ivan.example.org"},
            None,
            None,
            "scenario bad: policy.client.email: ",
            "ivan.example.org",
        ),
        ({"email": "ivan@"}, None, None, "scenario bad: policy.client.email: 'i***@' is not an e-mail", None),
        ({"vk_id": "id12345"}, None, None, "scenario bad: policy.client.vk_id: ", "id12345"),
        (
            {},
            "2027-04-20",
            "2027-04-21T00:30:00+03:00",
            "scenario bad: policy.expires_on: 2027-04-20 is in the past "
            "(the scenario's now is 2027-04-21 in Europe/Moscow)",
            None,
        ),
    ],
    ids=["short phone", "foreign phone", "e-mail without @", "e-mail without domain", "vk id", "past"],
)
def test_simulate_exits_2_naming_the_scenario_and_field(
    tmp_path: Path,
    client: dict[str, str],
    expires_on: str | None,
    now: str | None,
    message: str,
    clear: str | None,
) -> None:
    bad = scenario("bad", "KASKO", now=now or "2027-03-01T10:00:00+03:00", client=client)
    if expires_on:
        bad["policy"]["expires_on"] = expires_on
    done = run_simulate(tmp_path, [scenario("fine"), bad])
    assert done.returncode == 2
    assert done.stdout == ""
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(message), line
    if clear is not None:
        assert clear not in line


def test_simulate_takes_a_policy_on_its_last_day_of_cover_and_a_phone_as_intake_writes_it() -> None:
    """The boundary: on its last day the policy is still covered, so it is taken; `8 (916) …` is the
    number intake stores as +7916…, and so does the simulator."""
    from datetime import UTC, datetime

    from starter.simulate import parse_scenarios

    last_day = scenario("last-day", now="2027-04-20T23:30:00+03:00", client={"phone": "8 (916) 123-45-67"})
    [parsed] = parse_scenarios({"scenarios": [last_day]}, datetime(2026, 11, 23, tzinfo=UTC))
    assert parsed.policy.client.phone == "+79161234567"
