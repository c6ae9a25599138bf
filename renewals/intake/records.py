"""Reading rows from CSV and JSONL, keeping each row's line number and original text for reports."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

IGNORED_PREFIX = "_"  # columns like `_error` (written to rejects files) are ignored on import


# A cell a spreadsheet would run as a formula; a phone or a signed number is left as it is.
_FORMULA = re.compile(r"^[=+\-@\t\r]")
_NUMBER_LIKE = re.compile(r"^[+-]?[\d\s().-]*$")
QUOTE = "'"


def neutralised(cell: str) -> str:
    """`=HYPERLINK(…)` → `'=HYPERLINK(…)`: shown as text when the rejects file is opened in Excel;
    the import strips that quote again (`restored`), so a fixed rejects file imports as it is."""
    if _FORMULA.match(cell) and not _NUMBER_LIKE.match(cell):
        return QUOTE + cell
    return cell


def restored(cell: str) -> str:
    return cell[1:] if cell.startswith(QUOTE) and _FORMULA.match(cell[1:]) else cell


class FileFormatError(ValueError):
    """The file as a whole cannot be read (unknown extension, no header): nothing is imported."""


@dataclass(frozen=True)
class SourceRow:
    """One record as read: `values` has every field as the file gave it (strings in CSV)."""

    file: str
    line: int
    values: dict[str, Any]
    raw: str  # the row's original text (its line), for the rejects file
    extra: dict[str, Any] = field(default_factory=dict)
    unreadable: str | None = None  # why the line is not a record (`values` is then empty)


@dataclass
class SourceFile:
    """A file checked whole (its encoding, its header) and read as a stream of rows (`stream()`); the
    `rows` and `unreadable` lists are filled by `read_file` only, for callers that want them in memory."""

    path: Path
    format: str  # "csv" or "jsonl"
    header: list[str]
    delimiter: str
    rows: list[SourceRow] = field(default_factory=list)
    unreadable: list[SourceRow] = field(default_factory=list)  # lines that are not records
    lines: int = 0  # non-blank lines after the header

    def stream(self) -> Iterator[SourceRow]:
        """Every record and every unreadable line in file order, one line in memory at a time."""
        lines = _physical_lines(self.path)
        if self.format == "csv":
            next(lines, None)  # the header
            for number, line in lines:
                row = _csv_row(self, number, line)
                if row is not None:
                    yield row
        else:
            for number, line in lines:
                if line.strip():
                    yield _jsonl_row(self.path, number, line)


def file_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    raise FileFormatError(f"{path}: unknown format {suffix!r}; use .csv or .jsonl")


def open_source(path: Path) -> SourceFile:
    """Check the whole file before anything is stored — it is UTF-8 and has a header — counting its
    lines as it goes; nothing but the current line is held."""
    fmt = file_format(path)
    header: list[str] = []
    delimiter = ","
    count = 0
    for number, line in _physical_lines(path):
        if number == 1 and fmt == "csv":
            header, delimiter = _header(path, line)
        elif line.strip():
            count += 1
    if fmt == "csv" and not header:
        raise FileFormatError(f"{path}: no header line")
    return SourceFile(path, fmt, header, delimiter, lines=count)


def read_file(path: Path) -> SourceFile:
    source = open_source(path)
    for row in source.stream():
        (source.unreadable if row.unreadable else source.rows).append(row)
    return source


def _physical_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Lines split on '\\n' only (a U+2028 or a lone '\\r' inside a value is not a line end), decoded
    one at a time; a line that is not UTF-8 refuses the file, naming Windows-1251 when it looks so."""
    with path.open("rb") as data:
        for number, raw in enumerate(data, start=1):
            try:
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as error:
                raise _not_utf8(path, number, raw, error) from None
            yield number, text.removesuffix("\n").removesuffix("\r")


def _not_utf8(path: Path, line: int, raw: bytes, error: UnicodeDecodeError) -> FileFormatError:
    guess = raw.decode("cp1251", errors="replace")
    letters = [char for char in guess if char.isalpha()]
    if letters and sum("а" <= char.lower() <= "я" or char in "Ёё" for char in letters) * 2 > len(letters):
        return FileFormatError(
            f"{path}: not UTF-8 (line {line}): looks like Windows-1251 (cp1251); "
            "save it as «CSV UTF-8» or convert it: iconv -f cp1251 -t utf-8"
        )
    return FileFormatError(f"{path}: not UTF-8 (line {line}, byte {error.start + 1}); save it as UTF-8")


def _header(path: Path, line: str) -> tuple[list[str], str]:
    if not line.strip():
        raise FileFormatError(f"{path}: no header line")
    # Russian Excel saves CSV with ';'; everyone else with ','.
    delimiter = ";" if line.count(";") > line.count(",") else ","
    try:
        header = [name.strip() for name in _record(line, delimiter)]
    except csv.Error as error:
        raise FileFormatError(f"{path}: header line: {error}") from None
    while header and not header[-1]:
        header.pop()  # a trailing delimiter (`a,b,c,`) names no column
    return header, delimiter


def _csv_row(source: SourceFile, number: int, line: str) -> SourceRow | None:
    """One record per physical line, parsed strictly: an unmatched quote rejects that line only (a
    lenient reader would swallow every later line into one cell), and the next line is a row again."""
    if not line.strip():
        return None
    path = str(source.path)
    try:
        record = _record(line, source.delimiter)
    except csv.Error as error:
        return SourceRow(
            path, number, {}, line, unreadable=f"not a CSV record: {error} (an unmatched or stray quote?)"
        )
    if not any(cell.strip() for cell in record):
        return None
    values: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for index, cell in enumerate(record):
        if index >= len(source.header) and not cell.strip():
            continue  # the trailing delimiter again
        name = source.header[index] if index < len(source.header) else f"column {index + 1}"
        (extra if name.startswith(IGNORED_PREFIX) else values)[name] = restored(cell.strip())
    return SourceRow(path, number, values, line, extra)


def _record(line: str, delimiter: str) -> list[str]:
    return next(csv.reader([line], delimiter=delimiter, strict=True), [])


def _jsonl_row(path: Path, number: int, line: str) -> SourceRow:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as error:
        return SourceRow(
            str(path), number, {}, line, unreadable=f"not JSON: {error.msg} at column {error.colno}"
        )
    except RecursionError:
        return SourceRow(str(path), number, {}, line, unreadable="not JSON: nested too deep")
    if not isinstance(data, dict):
        return SourceRow(str(path), number, {}, line, unreadable="not a JSON object")
    values = {k: v for k, v in data.items() if not k.startswith(IGNORED_PREFIX)}
    extra = {k: v for k, v in data.items() if k.startswith(IGNORED_PREFIX)}
    return SourceRow(str(path), number, values, line, extra)
