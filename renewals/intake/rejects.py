"""The rejects file: the rejected rows in the input's own format, each with its reasons in `_error`.

Columns and keys starting with `_` are ignored on import, so the operator fixes the rows in place and
imports the rejects file as it is.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, TextIO

from renewals.intake.fields import Rejection
from renewals.intake.records import SourceFile, SourceRow, neutralised

ERROR_FIELD = "_error"


def _cells(raw: str, source: SourceFile) -> list[str]:
    """A row the CSV reader refused (a stray quote): its cells split naively, for the operator to fix."""
    cells = raw.split(source.delimiter)
    return cells + [""] * (len(source.header) - len(cells))


def default_rejects_path(source: Path) -> Path:
    return source.with_name(f"{source.stem}.rejects{source.suffix}")


def _reasons(problems: list[Rejection]) -> str:
    return "; ".join(f"{p.field}: {p.reason}" for p in problems)


class Rejects:
    """The rejects file written as the rows are rejected, opened at the first one (no file when none)."""

    def __init__(self, source: SourceFile, path: Path) -> None:
        self.source, self.path, self.rows = source, path, 0
        self._out: TextIO | None = None
        self._csv: Any = None

    def write(self, row: SourceRow, problems: list[Rejection]) -> None:
        if self._out is None:
            self._out = self.path.open("w", encoding="utf-8", newline="")
            if self.source.format == "csv":
                self._csv = csv.writer(self._out, delimiter=self.source.delimiter, lineterminator="\n")
                self._csv.writerow([*self._header(), ERROR_FIELD])
        self.rows += 1
        if self._csv is not None:
            cells = (
                [row.values.get(name, "") for name in self._header()]
                if row.values
                else _cells(row.raw, self.source)
            )
            self._csv.writerow([*(neutralised(str(cell)) for cell in cells), neutralised(_reasons(problems))])
        else:
            self._out.write(_jsonl_line(row, problems) + "\n")

    def _header(self) -> list[str]:
        return [name for name in self.source.header if not name.startswith("_")]

    def close(self) -> None:
        if self._out is not None:
            self._out.close()


def _jsonl_line(row: SourceRow, problems: list[Rejection]) -> str:
    if row.values or row.raw.strip().startswith("{"):
        try:
            data = json.loads(row.raw)
        except (json.JSONDecodeError, RecursionError):
            return row.raw
        if isinstance(data, dict):
            data[ERROR_FIELD] = _reasons(problems)
            return json.dumps(data, ensure_ascii=False)
    return row.raw


def write_rejects(source: SourceFile, rejected: list[tuple[SourceRow, list[Rejection]]], path: Path) -> None:
    rejects = Rejects(source, path)
    try:
        for row, problems in rejected:
            rejects.write(row, problems)
    finally:
        rejects.close()
