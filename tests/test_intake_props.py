"""Issue 12: field checks at the boundary, and a property — any mutation of one row of a good file ends
in a precise rejection with that row's line, or in the same kind of stored policy; never a lost row
nor two rows merged, and never a change to any other row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from renewals.db.database import Database
from renewals.intake.importer import import_file
from renewals.intake.records import SourceFile, read_file
from renewals.intake.validate import Validated, validate_rows
from tests.test_intake import AGENT, CENTRE, GOOD, HEADER, TODAY, write_csv, write_jsonl

FIELD_CASES = {
    "surname too long for its column": ({"last_name": "Я" * 101}, "last_name", "longer than the 100"),
    "e-mail too long": ({"email": "a" * 250 + "@x.ru"}, "email", "longer than the 254"),
    "number too long": ({"product": "OSAGO", "number": "Х" * 65}, "number", "longer than the 64"),
    "vk_id not an id": ({"vk_id": "vk.com/durov"}, "vk_id", "not a VK user id"),
    "e-mail with a space": ({"email": "ivan petrov@example.org"}, "email", "not an e-mail address"),
    "e-mail with two dots": ({"email": "ivan..p@example.org"}, "email", "not an e-mail address"),
    "a link in a name": ({"first_name": "Иван http://sale.example"}, "first_name", "contains a link"),
    "a site in a name": ({"last_name": "Иванов strahovka.ru"}, "last_name", "contains a site"),
}


@pytest.mark.parametrize("case", list(FIELD_CASES))
async def test_fields_are_checked_at_the_boundary(case: str, sqlite_db: Database, tmp_path: Path) -> None:
    changes, field, phrase = FIELD_CASES[case]
    source = write_csv(tmp_path / "in.csv", [AGENT, CENTRE, GOOD | changes])
    report = await import_file(sqlite_db, source, TODAY)
    assert [(r.line, r.field) for r in report.rejections] == [(4, field)], [str(r) for r in report.rejections]
    assert phrase in report.rejections[0].reason


async def test_a_link_in_an_agent_name_is_refused(sqlite_db: Database, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "in.csv", [AGENT | {"agent_name": "Петрова www.sale.ru"}])
    report = await import_file(sqlite_db, source, TODAY)
    assert [(r.line, r.field) for r in report.rejections] == [(2, "agent_name")]


@pytest.mark.parametrize(
    ("value", "phrase"),
    [({"a": 1}, "a JSON dict"), (["x"], "a JSON list"), (True, "true/false where text")],
)
async def test_wrong_json_types_are_refused(
    value: Any, phrase: str, sqlite_db: Database, tmp_path: Path
) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [AGENT, CENTRE, GOOD | {"last_name": value}])
    report = await import_file(sqlite_db, source, TODAY)
    assert [(r.line, r.field) for r in report.rejections] == [(3, "last_name")]
    assert phrase in report.rejections[0].reason


# ---- the property -----------------------------------------------------------------------------------

ROWS = 4  # policy rows after the agent and the centre: lines 4..7 in CSV, 3..6 in JSONL
MUTATED = 3  # the second policy row: the rows after it must still be read as rows


def good_rows() -> list[dict[str, Any]]:
    return [AGENT, CENTRE] + [
        GOOD | {"number": f"7100K/046/{100 + i:06d}/26", "phone": f"+7916123456{i}", "first_name": f"Иван{i}"}
        for i in range(ROWS)
    ]


def validated(path: Path) -> tuple[SourceFile, Validated]:
    source = read_file(path)
    return source, validate_rows(source.rows, TODAY, {}, {})


def check(path: Path, mutated_line: int, baseline: dict[int, Any]) -> None:
    source, result = validated(path)
    rejected_lines = {row.line for row, _ in result.rejected} | {row.line for row in source.unreadable}
    accepted = {record.row.line: record.policy for record in result.policies}
    assert rejected_lines <= {mutated_line}, [str(r) for r in result.rejections]  # precise
    assert len(result.agents) == 1 and len(result.centres) == 1
    assert set(accepted) | rejected_lines == set(baseline)  # no row lost, none merged into another
    assert not set(accepted) & rejected_lines
    for line, policy in accepted.items():
        if line != mutated_line:
            assert policy == baseline[line]  # the other rows are stored exactly as before
    assert len({(p.number, p.expires_on) for p in accepted.values()}) == len(accepted)


values = st.one_of(
    st.text(max_size=30),
    st.sampled_from(['"', '""', ",", ";", '"x', 'x"', "=1+2", " ", "\u2028", "\x85", "ХХХ 0123456789"]),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    field=st.sampled_from([name for name in HEADER if name != "kind"]),
    value=values,
    raw_insert=st.one_of(
        st.none(),
        st.tuples(st.integers(0, 200), st.sampled_from(['"', ",", '",'])),
    ),
)
def test_any_csv_row_mutation_is_rejected_on_its_line_or_kept(
    tmp_path_factory: pytest.TempPathFactory, field: str, value: str, raw_insert: tuple[int, str] | None
) -> None:
    folder = tmp_path_factory.mktemp("csv")
    rows = good_rows()
    path = write_csv(folder / "in.csv", rows)
    baseline = {record.row.line: record.policy for record in validated(path)[1].policies}
    assert len(baseline) == ROWS
    value = value.replace("\r", "").replace("\n", "")  # one record is one line (documented)
    rows[MUTATED] = rows[MUTATED] | {field: value}
    write_csv(path, rows)
    if raw_insert is not None:
        lines = path.read_text(encoding="utf-8").split("\n")
        at, text = raw_insert
        line = lines[MUTATED + 1]
        lines[MUTATED + 1] = line[: at % (len(line) + 1)] + text + line[at % (len(line) + 1) :]
        path.write_text("\n".join(lines), encoding="utf-8")
    check(path, MUTATED + 2, baseline)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | values,
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=3), inner, max_size=2),
    max_leaves=4,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from([*HEADER, "extra", "_note"]), value=json_values, drop=st.booleans())
def test_any_jsonl_row_mutation_is_rejected_on_its_line_or_kept(
    tmp_path_factory: pytest.TempPathFactory, field: str, value: Any, drop: bool
) -> None:
    folder = tmp_path_factory.mktemp("jsonl")
    rows = good_rows()
    path = write_jsonl(folder / "in.jsonl", rows)
    baseline = {record.row.line: record.policy for record in validated(path)[1].policies}
    row = dict(rows[MUTATED])
    if drop:
        row.pop(field, None)
    else:
        row[field] = value
    rows[MUTATED] = row
    write_jsonl(path, rows)
    check(path, MUTATED + 1, baseline)


async def test_report_lines_never_wrap_without_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from renewals.settings import Settings
    from starter.ops import ops

    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/cli.db")
    long_dir = tmp_path / ("long-folder-name-" * 4) / ("another-long-folder-" * 4)
    long_dir.mkdir(parents=True)
    source = write_csv(long_dir / "in.csv", [AGENT, CENTRE, GOOD | {"agent_id": "A-" + "9" * 60}])
    assert await ops(["import", str(source), "--no-sync"], settings) == 1
    captured = capsys.readouterr()
    [rejection] = captured.err.strip().splitlines()  # no progress bar, no wrapped line
    assert rejection.startswith(f"{source}:4: agent_id: unknown agent") and len(rejection) > 250
    assert captured.out.splitlines()[0].startswith(f"{source}: 3 rows;")
