"""Intake: every validation error class with its file, line, field and reason; idempotent re-import;
rejects files that import again once fixed; the CLI's exit codes."""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from renewals.db.database import Database
from renewals.db.tables import AgentRow, ClientRow, PolicyRow, RegionalCentreRow
from renewals.intake.importer import import_file
from renewals.intake.portfolio_store import load_policy
from renewals.intake.records import FileFormatError
from renewals.intake.validate import POLICY_FIELDS
from renewals.settings import Settings
from starter.ops import ops

TODAY = date(2026, 11, 23)
EXAMPLES = Path(__file__).parent.parent / "examples"
HEADER = [
    "kind", *POLICY_FIELDS,
    "agent_name", "agent_phone", "rate_kasko", "rate_osago", "rate_ifl", "centre_name", "centre_phone",
]  # fmt: skip
GOOD = {
    "kind": "policy",
    "number": "7100K/046/000101/26",
    "product": "KASKO",
    "expires_on": "2027-01-12",
    "last_name": "Иванов",
    "first_name": "Иван",
    "phone": "+79161234567",
    "email": "ivan@example.org",
    "timezone": "Europe/Moscow",
    "agent_id": "A-100",
    "centre_id": "msk",
}
AGENT = {"kind": "agent", "agent_id": "A-100", "agent_name": "Петрова Анна", "agent_phone": "+79031112233"}
CENTRE = {"kind": "centre", "centre_id": "msk", "centre_name": "Москва", "centre_phone": "+74957770000"}


def write_csv(path: Path, rows: list[dict[str, str]], delimiter: str = ",") -> Path:
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, HEADER, delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


async def count(db: Database, table: type) -> int:
    async with db.session() as session:
        return int((await session.execute(select(func.count()).select_from(table))).scalar_one())


# Each case: the changes to a good row → (field, a phrase of the reason).
INVALID = {
    "unknown product": ({"product": "CASCO"}, "product", "is not a product"),
    "IFL without code": ({"product": "IFL", "number": "3500I/305/000103/26"}, "product_code", "needs its"),
    "IFL bad code": (
        {"product": "IFL", "number": "3500I/305/000103/26", "product_code": "30A"},
        "product_code",
        "three digits",
    ),
    "code on KASKO": ({"product_code": "305"}, "product_code", "IFL only"),
    "mortgage without bank": (
        {"product": "MORTGAGE", "number": "9100M/777/000104"},
        "bank",
        "needs its bank",
    ),
    "unknown bank": (
        {"product": "MORTGAGE", "number": "9100M/777/000104", "bank": "VTB"},
        "bank",
        "not a bank",
    ),
    "bank on KASKO": ({"bank": "SBER"}, "bank", "MORTGAGE only"),
    "KASKO number format": ({"number": "KASKO-1"}, "number", "is not a KASKO policy number"),
    "OSAGO number format": ({"product": "OSAGO", "number": "ХХХ 12345"}, "number", "is not a OSAGO policy"),
    "KASKO_OSAGO number format": (
        {"product": "KASKO_OSAGO", "number": "7100K/046/000101"},  # the mortgage shape, no /XX
        "number",
        "is not a KASKO_OSAGO policy number (XXXXX/XXX/XXXXXX/XX)",
    ),
    "IFL number format": (
        {"product": "IFL", "product_code": "305", "number": "ХХХ 0123456789"},  # an ОСАГО number
        "number",
        "is not a IFL policy number (XXXXX/XXX/XXXXXX/XX)",
    ),
    "mortgage number format": (
        {"product": "MORTGAGE", "bank": "SBER", "number": "7100K/046/000101/26"},
        "number",
        "XXXXX/XXX/XXXXXX",
    ),
    "missing number": ({"number": ""}, "number", "required"),
    "bad date": ({"expires_on": "31/12/2026"}, "expires_on", "is not a date"),
    "expiry in the past": ({"expires_on": "2026-11-22"}, "expires_on", "in the past"),
    "expiry beyond the calendar": ({"expires_on": "2099-01-01"}, "expires_on", "production calendar"),
    "unparsable phone": ({"phone": "call me"}, "phone", "not a phone number"),
    "invalid phone": ({"phone": "+7916123"}, "phone", "not a valid phone number"),
    "foreign phone": ({"phone": "+380501234567"}, "phone", "not a Russian number"),
    "Kazakh +7 phone": ({"phone": "+77011234567"}, "phone", "not a Russian number"),
    "bad e-mail": ({"email": "ivan@example"}, "email", "not an e-mail address"),
    "unknown time zone": ({"timezone": "Mars/Base"}, "timezone", "not a time zone"),
    "unknown agent": ({"agent_id": "A-999"}, "agent_id", "unknown agent"),
    "unknown centre": ({"centre_id": "spb"}, "centre_id", "unknown regional centre"),
    "centre client without centre": ({"renewal_centre": "да", "centre_id": ""}, "centre_id", "needs its"),
    "bad yes/no": ({"first_prolongation_year": "maybe"}, "first_prolongation_year", "yes/no"),
    "missing name": ({"first_name": ""}, "first_name", "required"),
    "unknown kind": ({"kind": "broker"}, "kind", "is not one of"),
}


@pytest.mark.parametrize("case", list(INVALID))
async def test_every_validation_error_names_file_line_field_and_reason(
    case: str, sqlite_db: Database, tmp_path: Path
) -> None:
    changes, field, phrase = INVALID[case]
    source = write_csv(
        tmp_path / "in.csv", [AGENT, CENTRE, GOOD | {"number": "7100K/046/000999/26"}, GOOD | changes]
    )
    report = await import_file(sqlite_db, source, TODAY)
    assert not report.ok and report.rejected_rows == 1
    [rejection] = [r for r in report.rejections if r.field == field]
    assert rejection.file == str(source) and rejection.line == 5
    assert phrase in rejection.reason
    assert str(rejection).startswith(f"{source}:5: {field}: ")
    assert report.counts["policy inserted"] == 1  # the good row went in regardless


async def test_agent_and_centre_rows_are_validated_too(sqlite_db: Database, tmp_path: Path) -> None:
    rows = [
        AGENT | {"agent_phone": "12"},
        AGENT | {"agent_id": "A-2", "rate_kasko": "175%"},
        CENTRE | {"centre_name": ""},
        CENTRE | {"centre_id": "bad id!"},
    ]
    report = await import_file(sqlite_db, write_csv(tmp_path / "ref.csv", rows), TODAY)
    assert [(r.line, r.field) for r in report.rejections] == [
        (2, "agent_phone"),
        (3, "rate_kasko"),
        (4, "centre_name"),
        (5, "centre_id"),
    ]
    assert await count(sqlite_db, AgentRow) == 0


async def test_jsonl_problems_unknown_fields_and_duplicates(sqlite_db: Database, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    lines = [
        json.dumps(AGENT, ensure_ascii=False),
        json.dumps(CENTRE, ensure_ascii=False),
        "{not json",
        "[1, 2]",
        json.dumps(GOOD | {"phon": "+79161234567"}, ensure_ascii=False),
        json.dumps(GOOD, ensure_ascii=False),
        json.dumps(GOOD, ensure_ascii=False),
    ]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = await import_file(sqlite_db, source, TODAY)
    assert [(r.line, r.field) for r in report.rejections] == [
        (3, "row"),
        (4, "row"),
        (5, "phon"),
        (7, "number"),
    ]
    assert "duplicate of line 6" in report.rejections[-1].reason
    assert report.counts["policy inserted"] == 1


async def test_reimport_is_idempotent(sqlite_db: Database) -> None:
    first = await import_file(sqlite_db, EXAMPLES / "portfolio.csv", TODAY)
    assert first.ok, [str(r) for r in first.rejections]
    assert first.counts == {"policy inserted": 5, "agent inserted": 2, "centre inserted": 2}
    tables = [PolicyRow, ClientRow, AgentRow, RegionalCentreRow]
    before = [await count(sqlite_db, t) for t in tables]
    again = await import_file(sqlite_db, EXAMPLES / "portfolio.csv", TODAY)
    assert again.counts == {"policy unchanged": 5, "agent unchanged": 2, "centre unchanged": 2}
    assert again.changed == []  # nothing to push to running journeys
    assert [await count(sqlite_db, t) for t in tables] == before


async def test_example_jsonl_imports_and_normalises(sqlite_db: Database) -> None:
    report = await import_file(sqlite_db, EXAMPLES / "portfolio.jsonl", TODAY)
    assert report.ok, [str(r) for r in report.rejections]
    stored = await load_policy(sqlite_db, "ХХХ 0123456790", date(2027, 1, 3))
    assert stored is not None
    assert stored.policy.client.phone == "+79165550011"  # «8 916 555-00-11» in E.164
    assert stored.policy.product.value == "OSAGO"  # «ОСАГО»
    assert stored.policy.agent.renewal_rates  # the agent card came from the agent row


async def test_rejects_file_reimports_after_fixing(sqlite_db: Database, tmp_path: Path) -> None:
    source = write_csv(
        tmp_path / "in.csv",
        [AGENT, CENTRE, GOOD, GOOD | {"number": "7100K/046/000102/26", "phone": "+7916"}],
        delimiter=";",
    )
    report = await import_file(sqlite_db, source, TODAY)
    assert report.rejects_file == tmp_path / "in.rejects.csv"
    text = report.rejects_file.read_text(encoding="utf-8")
    assert "_error" in text.splitlines()[0] and "phone: '+7***' is not a valid phone number" in text
    assert ";" in text.splitlines()[0]  # the input's own delimiter
    fixed = text.replace("+7916;", "+79161230000;")
    report.rejects_file.write_text(fixed, encoding="utf-8")
    again = await import_file(sqlite_db, report.rejects_file, TODAY)
    assert again.ok and again.counts == {"policy inserted": 1}


async def test_jsonl_rejects_keep_the_row_and_add_the_reason(sqlite_db: Database, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [AGENT, CENTRE, GOOD | {"email": "nope"}])
    report = await import_file(sqlite_db, source, TODAY)
    assert report.rejects_file is not None
    [line] = report.rejects_file.read_text(encoding="utf-8").splitlines()
    rejected = json.loads(line)
    assert rejected["_error"].startswith("email:")
    rejected["email"] = "ivan@example.org"
    write_jsonl(report.rejects_file, [rejected])
    assert (await import_file(sqlite_db, report.rejects_file, TODAY)).counts == {"policy inserted": 1}


async def test_a_cancellation_is_stored_and_sticky(sqlite_db: Database, tmp_path: Path) -> None:
    await import_file(
        sqlite_db, write_csv(tmp_path / "a.csv", [AGENT, CENTRE, GOOD | {"cancelled": "true"}]), TODAY
    )
    report = await import_file(sqlite_db, write_csv(tmp_path / "b.csv", [GOOD]), TODAY)
    assert report.counts == {"policy unchanged": 1}
    stored = await load_policy(sqlite_db, GOOD["number"], date(2027, 1, 12))
    assert stored is not None and stored.cancelled


async def test_unreadable_files_are_refused_whole(sqlite_db: Database, tmp_path: Path) -> None:
    with pytest.raises(FileFormatError):
        await import_file(sqlite_db, tmp_path.joinpath("p.xlsx"), TODAY)
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(FileFormatError):
        await import_file(sqlite_db, empty, TODAY)


async def test_cli_exit_code_says_whether_anything_was_rejected(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/cli.db")
    rows = [AGENT, CENTRE, GOOD | {"expires_on": "2030-01-01"}]
    assert await ops(["import", str(write_csv(tmp_path / "ok.csv", rows)), "--no-sync"], settings) == 0
    bad = write_csv(tmp_path / "bad.csv", [GOOD | {"expires_on": "2030-01-01", "agent_id": "X"}])
    rejects = tmp_path / "fix-me.csv"
    assert await ops(["import", str(bad), "--rejects", str(rejects), "--no-sync"], settings) == 1
    assert rejects.exists()
    assert await ops(["import", str(tmp_path / "missing.csv")], settings) == 2
    assert await ops(["import"], settings) == 2  # usage error
