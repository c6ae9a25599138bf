"""The rejects file: the rejected rows in the input's own format, each with its reasons in `_error`.

Columns and keys starting with `_` are ignored on import, so the operator fixes the rows in place and
imports the rejects file as it is.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from renewals.intake.records import SourceFile, SourceRow
from renewals.intake.validate import Rejection

ERROR_FIELD = "_error"


def default_rejects_path(source: Path) -> Path:
    return source.with_name(f"{source.stem}.rejects{source.suffix}")


def _reasons(problems: list[Rejection]) -> str:
    return "; ".join(f"{p.field}: {p.reason}" for p in problems)


def write_rejects(source: SourceFile, rejected: list[tuple[SourceRow, list[Rejection]]], path: Path) -> None:
    if source.format == "csv":
        header = [name for name in source.header if not name.startswith("_")]
        with path.open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out, delimiter=source.delimiter, lineterminator="\n")
            writer.writerow([*header, ERROR_FIELD])
            for row, problems in rejected:
                writer.writerow([*(row.values.get(name, "") for name in header), _reasons(problems)])
        return
    with path.open("w", encoding="utf-8") as out:
        for row, problems in rejected:
            if row.values or row.raw.strip().startswith("{"):
                try:
                    data = json.loads(row.raw)
                except json.JSONDecodeError:
                    out.write(row.raw + "\n")
                    continue
                data[ERROR_FIELD] = _reasons(problems)
                out.write(json.dumps(data, ensure_ascii=False) + "\n")
            else:
                out.write(row.raw + "\n")
