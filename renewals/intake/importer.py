"""`renewals import FILE`: read, validate, store the good rows, write the rejects file, report."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from renewals.db.database import Database
from renewals.intake.records import SourceFile, read_file
from renewals.intake.rejects import default_rejects_path, write_rejects
from renewals.intake.store import (
    Change,
    known_agents,
    known_centres,
    store_agent,
    store_centre,
    store_policy,
)
from renewals.intake.validate import Rejection, unreadable_rejection, validate_rows
from renewals.models import Policy


@dataclass
class ImportReport:
    file: str
    rows: int = 0
    counts: Counter[str] = field(default_factory=Counter)  # "policy inserted", "agent unchanged", …
    rejections: list[Rejection] = field(default_factory=list)
    rejected_rows: int = 0
    rejects_file: Path | None = None
    changed: list[tuple[Policy, bool]] = field(default_factory=list)  # (policy, cancelled) to sync

    @property
    def ok(self) -> bool:
        return self.rejected_rows == 0


Progress = Callable[[int], None]


async def import_file(
    db: Database,
    path: Path,
    today: date,
    rejects_path: Path | None = None,
    total: Callable[[int], None] | None = None,
    advance: Progress | None = None,
) -> ImportReport:
    """Store every valid row (idempotently) and write rejected rows to the rejects file, if any."""
    source: SourceFile = read_file(path)
    report = ImportReport(file=str(path), rows=len(source.rows) + len(source.unreadable))
    if total is not None:
        total(report.rows)
    validated = validate_rows(source.rows, today, await known_agents(db), await known_centres(db))
    rejected = validated.rejected + [(row, [unreadable_rejection(row)]) for row in source.unreadable]
    rejected.sort(key=lambda item: item[0].line)

    def step() -> None:
        if advance is not None:
            advance(1)

    for _, agent in validated.agents:
        report.counts[f"agent {await store_agent(db, agent)}"] += 1
        step()
    for _, centre in validated.centres:
        report.counts[f"centre {await store_centre(db, centre)}"] += 1
        step()
    for record in validated.policies:
        change = await store_policy(db, record.policy, record.cancelled)
        report.counts[f"policy {change}"] += 1
        if change is not Change.UNCHANGED:
            report.changed.append((record.policy, record.cancelled))
        step()
    for _ in rejected:
        step()
    report.rejected_rows = len(rejected)
    report.rejections = [problem for _, problems in rejected for problem in problems]
    if rejected:
        report.rejects_file = rejects_path or default_rejects_path(path)
        write_rejects(source, rejected, report.rejects_file)
    return report
