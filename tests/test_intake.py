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
from renewals.models import journey_id
from renewals.settings import Settings
from starter.ops import ops
from tests.factories import ChangeCollector

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
    "bank name too long": (  # any bank's name is a bank now (tests/test_real_input.py)
        {"product": "MORTGAGE", "number": "9100M/777/000104", "bank": "Банк " * 41},
        "bank",
        "longer than the 200",
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
    sink = ChangeCollector()
    again = await import_file(sqlite_db, EXAMPLES / "portfolio.csv", TODAY, on_changed=sink)
    assert again.counts == {"policy unchanged": 5, "agent unchanged": 2, "centre unchanged": 2}
    assert again.changed == 0 and sink.changes == []  # nothing to push to running journeys
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


# ---- issue 12: a reader that never swallows a row -------------------------------------------------


def csv_lines(path: Path, rows: list[dict[str, str]], broken: dict[int, str] | None = None) -> Path:
    """`rows` as CSV lines; `broken[i]` replaces the i-th row's line with raw text."""
    write_csv(path, rows)
    lines = path.read_text(encoding="utf-8").splitlines()
    for index, text in (broken or {}).items():
        lines[index + 1] = text
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def test_an_unmatched_quote_rejects_its_row_and_later_rows_are_rows(
    sqlite_db: Database, tmp_path: Path
) -> None:
    rows = [
        AGENT,
        CENTRE,
        GOOD,
        GOOD | {"number": "7100K/046/000102/26"},
        GOOD | {"number": "7100K/046/000103/26"},
    ]
    source = csv_lines(tmp_path / "in.csv", rows, {3: 'policy,"7100K/046/000102/26,KASKO,,,2027-01-12'})
    report = await import_file(sqlite_db, source, TODAY)
    assert [(r.line, r.field) for r in report.rejections] == [(5, "row")]
    assert "quote" in report.rejections[0].reason
    assert report.rows == 5 and report.rejected_rows == 1
    assert report.counts["policy inserted"] == 2  # line 6 is a row of its own, not part of a cell
    assert await load_policy(sqlite_db, "7100K/046/000103/26", date(2027, 1, 12)) is not None
    assert report.rejects_file is not None
    [_, rejected] = report.rejects_file.read_text(encoding="utf-8").splitlines()
    assert "7100K/046/000102/26" in rejected and "quote" in rejected


async def test_jsonl_lines_end_at_newlines_only(sqlite_db: Database, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    named = GOOD | {"last_name": "Иванов\u2028Петров", "patronymic": "Ив\x85ч"}
    lines = [json.dumps(r, ensure_ascii=False) for r in (AGENT, CENTRE, named)]
    lines.append(json.dumps(GOOD | {"phone": "12"}, ensure_ascii=False))
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = await import_file(sqlite_db, source, TODAY)
    assert report.rows == 4
    assert [(r.line, r.field) for r in report.rejections] == [(4, "phone")]


async def test_look_alike_policy_numbers_are_one_policy(sqlite_db: Database, tmp_path: Path) -> None:
    osago = GOOD | {"product": "OSAGO", "number": "ХХХ 0123456789"}  # Cyrillic series
    rows = [
        AGENT,
        CENTRE,
        osago,
        osago | {"number": "ХХХ0123456789"},
        osago | {"number": "XXX 0123456789"},  # Latin look-alikes
        osago | {"number": "xxx/0123456789"},
        GOOD,
        GOOD | {"number": "7100К / 046/000101/26"},  # a Cyrillic К, spaces round a slash
    ]
    report = await import_file(sqlite_db, write_csv(tmp_path / "in.csv", rows), TODAY)
    assert [(r.line, r.field) for r in report.rejections] == [
        (5, "number"),
        (6, "number"),
        (7, "number"),
        (9, "number"),
    ]
    assert all("look-alike duplicate of line" in r.reason for r in report.rejections)
    assert "duplicate of line 4" in report.rejections[0].reason
    assert report.counts["policy inserted"] == 2 and await count(sqlite_db, PolicyRow) == 2
    # a later file with a look-alike number finds the stored policy, and the journey id is one
    again = await import_file(
        sqlite_db, write_csv(tmp_path / "b.csv", [osago | {"number": "XXX0123456789"}]), TODAY
    )
    assert again.counts == {"policy unchanged": 1}
    ids = {journey_id(n, date(2027, 1, 12)) for n in ("ХХХ 0123456789", "XXX0123456789", "ххх/0123456789")}
    assert ids == {"renewal-ХХХ0123456789-20270112"}  # the id of a number already normal is as before
    assert journey_id("TEST-centre-draft", date(2027, 4, 20)) == "renewal-TEST-CENTRE-DRAFT-20270420"
    assert journey_id("7100K/046/000101/26", date(2027, 1, 12)) == "renewal-7100K-046-000101-26-20270112"


@pytest.mark.parametrize(
    ("data", "phrase"),
    [
        ("номер;фамилия\nХХХ 0123456789;Иванов\n".encode("cp1251"), "Windows-1251 (cp1251)"),
        (b"kind,number\npolicy,\xff\xfe\n", "not UTF-8 (line 2"),
    ],
)
async def test_a_file_not_in_utf8_exits_2_with_one_line(
    data: bytes, phrase: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "excel.csv"
    source.write_bytes(data)
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/cli.db")
    assert await ops(["import", str(source), "--no-sync"], settings) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert str(source) in line and phrase in line


async def test_a_trailing_delimiter_in_the_header_is_tolerated(sqlite_db: Database, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "in.csv", [AGENT, CENTRE, GOOD])
    lines = source.read_text(encoding="utf-8").splitlines()
    source.write_text("\n".join(line + "," for line in lines) + "\n", encoding="utf-8")
    report = await import_file(sqlite_db, source, TODAY)
    assert report.ok, [str(r) for r in report.rejections]
    assert report.counts["policy inserted"] == 1


async def test_formulas_are_neutralised_in_the_rejects_file(sqlite_db: Database, tmp_path: Path) -> None:
    bad = GOOD | {"first_name": '=HYPERLINK("http://x")', "agent_id": "@SUM(A1)", "phone": "+7916"}
    report = await import_file(sqlite_db, write_csv(tmp_path / "in.csv", [AGENT, CENTRE, bad]), TODAY)
    assert report.rejects_file is not None
    with report.rejects_file.open(encoding="utf-8", newline="") as rejects:
        [row] = list(csv.DictReader(rejects))
    assert row["first_name"] == '\'=HYPERLINK("http://x")' and row["agent_id"] == "'@SUM(A1)"
    assert row["phone"] == "+7916"  # a phone is not a formula
    assert all(not cell.startswith(("=", "@")) for cell in row.values())


async def test_repeats_are_reported_and_an_unchanged_reimport_is_a_no_op(
    sqlite_db: Database, tmp_path: Path
) -> None:
    second = GOOD | {"number": "7100K/046/000102/26", "email": "other@example.com"}
    rows = [AGENT, AGENT | {"agent_name": "Сидорова Ольга"}, CENTRE, CENTRE, GOOD, second]
    source = write_csv(tmp_path / "in.csv", rows)
    first = await import_file(sqlite_db, source, TODAY)
    assert [(r.line, r.field) for r in first.rejections] == [(3, "agent_id"), (5, "centre_id"), (7, "client")]
    assert "repeated: already defined on line 2" in first.rejections[0].reason
    assert "same client" in first.rejections[2].reason and "email" in first.rejections[2].reason
    stored = await load_policy(sqlite_db, GOOD["number"], date(2027, 1, 12))
    assert stored is not None and stored.policy.client.email == GOOD["email"]
    assert stored.policy.agent.name == "Петрова Анна"  # the first definition, not silently the second
    sink = ChangeCollector()
    again = await import_file(sqlite_db, source, TODAY, on_changed=sink)
    assert again.counts == {"policy unchanged": 1, "agent unchanged": 1, "centre unchanged": 1}
    assert sink.changes == []  # no update_policy to any journey


async def test_one_persons_policies_keep_their_own_time_zones(sqlite_db: Database, tmp_path: Path) -> None:
    """A client's time zone is the one their policy's row gives: a second policy of the same person
    from another region keeps its own, and a row that names none gets the default, not another's."""
    novosibirsk = GOOD | {"number": "7100K/046/000102/26", "timezone": "Asia/Novosibirsk"}
    unnamed = GOOD | {"number": "7100K/046/000103/26", "timezone": ""}
    source = write_csv(
        tmp_path / "in.csv", [AGENT, CENTRE, GOOD | {"timezone": "Asia/Vladivostok"}, novosibirsk, unnamed]
    )
    report = await import_file(sqlite_db, source, TODAY)
    assert report.ok, [str(r) for r in report.rejections]
    zones = {}
    for number in (GOOD["number"], novosibirsk["number"], unnamed["number"]):
        stored = await load_policy(sqlite_db, number, date(2027, 1, 12))
        assert stored is not None
        zones[number] = stored.policy.client.timezone
    assert list(zones.values()) == ["Asia/Vladivostok", "Asia/Novosibirsk", "Europe/Moscow"]
    assert await count(sqlite_db, ClientRow) == 1  # still one person


async def test_a_changed_client_reaches_all_their_journeys(sqlite_db: Database, tmp_path: Path) -> None:
    other = GOOD | {"number": "7100K/046/000102/26"}
    await import_file(sqlite_db, write_csv(tmp_path / "a.csv", [AGENT, CENTRE, GOOD, other]), TODAY)
    sink = ChangeCollector()
    moved = GOOD | {"email": "new@example.com"}
    report = await import_file(sqlite_db, write_csv(tmp_path / "b.csv", [moved]), TODAY, on_changed=sink)
    assert report.counts == {"policy updated": 1}
    assert sorted(sink.numbers) == [GOOD["number"], other["number"]]
    assert all(p.client.email == "new@example.com" for p, _ in sink.changes)
    # a time zone is the term's own: moving one policy's zone changes that journey only
    sink = ChangeCollector()
    east = GOOD | {"timezone": "Asia/Novosibirsk"}
    await import_file(sqlite_db, write_csv(tmp_path / "c.csv", [east]), TODAY, on_changed=sink)
    zones = {p.number: p.client.timezone for p, _ in sink.changes}
    assert (
        zones[GOOD["number"]] == "Asia/Novosibirsk"
        and zones.get(other["number"], "Europe/Moscow") == "Europe/Moscow"
    )
    stored = await load_policy(sqlite_db, other["number"], date(2027, 1, 12))
    assert stored is not None and stored.policy.client.timezone == "Europe/Moscow"


async def test_the_cli_says_an_unchanged_reimport_changed_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/cli.db")
    source = str(write_csv(tmp_path / "ok.csv", [AGENT, CENTRE, GOOD | {"expires_on": "2030-01-01"}]))
    assert await ops(["import", source, "--no-sync"], settings) == 0
    capsys.readouterr()
    assert await ops(["import", source], settings) == 0  # no Temporal needed: nothing to tell
    output = capsys.readouterr().out
    assert "unchanged: nothing stored, no journey to update" in output
