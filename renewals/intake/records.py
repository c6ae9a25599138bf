"""Reading rows from CSV and JSONL, keeping each row's line number and original text for reports."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

IGNORED_PREFIX = "_"  # columns like `_error` (written to rejects files) are ignored on import


class FileFormatError(ValueError):
    """The file as a whole cannot be read (unknown extension, no header): nothing is imported."""


@dataclass(frozen=True)
class SourceRow:
    """One record as read: `values` has every field as the file gave it (strings in CSV)."""

    file: str
    line: int
    values: dict[str, Any]
    raw: str  # the row's original text (JSONL) or its CSV record, for the rejects file
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class SourceFile:
    path: Path
    format: str  # "csv" or "jsonl"
    header: list[str]
    delimiter: str
    rows: list[SourceRow]
    unreadable: list[SourceRow]  # JSONL lines that are not JSON objects (`values` is empty)


def file_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    raise FileFormatError(f"{path}: unknown format {suffix!r}; use .csv or .jsonl")


def read_file(path: Path) -> SourceFile:
    fmt = file_format(path)
    text = path.read_text(encoding="utf-8-sig")  # Excel writes a BOM
    if fmt == "csv":
        return _read_csv(path, text)
    return _read_jsonl(path, text)


def _read_csv(path: Path, text: str) -> SourceFile:
    first_line = text.split("\n", 1)[0]
    if not first_line.strip():
        raise FileFormatError(f"{path}: no header line")
    # Russian Excel saves CSV with ';'; everyone else with ','.
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [name.strip() for name in next(reader)]
    rows: list[SourceRow] = []
    previous_end = reader.line_num
    for record in reader:
        start, previous_end = previous_end + 1, reader.line_num
        if not any(cell.strip() for cell in record):
            continue
        values: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for index, cell in enumerate(record):
            name = header[index] if index < len(header) else f"column {index + 1}"
            (extra if name.startswith(IGNORED_PREFIX) else values)[name] = cell.strip()
        out = io.StringIO()
        csv.writer(out, delimiter=delimiter, lineterminator="\n").writerow(record)
        rows.append(SourceRow(str(path), start, values, out.getvalue().rstrip("\n"), extra))
    return SourceFile(path, "csv", header, delimiter, rows, [])


def _read_jsonl(path: Path, text: str) -> SourceFile:
    rows: list[SourceRow] = []
    unreadable: list[SourceRow] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as error:
            reason = f"not JSON: {error.msg} at column {error.colno}"
            unreadable.append(SourceRow(str(path), number, {}, line, {"reason": reason}))
            continue
        if not isinstance(data, dict):
            unreadable.append(SourceRow(str(path), number, {}, line, {"reason": "not a JSON object"}))
            continue
        values = {k: v for k, v in data.items() if not k.startswith(IGNORED_PREFIX)}
        extra = {k: v for k, v in data.items() if k.startswith(IGNORED_PREFIX)}
        rows.append(SourceRow(str(path), number, values, line, extra))
    return SourceFile(path, "jsonl", [], ",", rows, unreadable)
