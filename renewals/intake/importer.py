"""`renewals import FILE`: read, validate, store the good rows, write the rejects file, report."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from renewals.db.database import Database
from renewals.intake.portfolio_store import (
    Change,
    known_agents,
    known_centres,
    policies_referring,
    store_agent,
    store_centre,
    store_policies,
)
from renewals.intake.records import SourceFile, read_file
from renewals.intake.rejects import default_rejects_path, write_rejects
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
BATCH = 500  # policy rows per transaction: one commit per batch, not one per row


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

    async def counted(kind: str, stored: Awaitable[Change]) -> bool:
        """Count an agent's or centre's store; True if it changed, so its clients' journeys must hear."""
        change = await stored
        report.counts[f"{kind} {change}"] += 1
        step()
        return change is Change.UPDATED

    moved_agents = {a.id for _, a in validated.agents if await counted("agent", store_agent(db, a))}
    moved_centres = {c.id for _, c in validated.centres if await counted("centre", store_centre(db, c))}
    for start in range(0, len(validated.policies), BATCH):
        batch = validated.policies[start : start + BATCH]
        changes = await store_policies(db, [(record.policy, record.cancelled) for record in batch])
        for record, change in zip(batch, changes, strict=True):
            report.counts[f"policy {change}"] += 1
            if change is not Change.UNCHANGED:
                report.changed.append((record.policy, record.cancelled))
        if advance is not None:
            advance(len(batch))
    if moved_agents or moved_centres:
        queued = {(policy.number, policy.expires_on) for policy, _ in report.changed}
        for stored in await policies_referring(db, moved_agents, moved_centres, today):
            if (stored.policy.number, stored.policy.expires_on) not in queued:
                report.changed.append((stored.policy, stored.cancelled))
    for _ in rejected:
        step()
    report.rejected_rows = len(rejected)
    report.rejections = [problem for _, problems in rejected for problem in problems]
    if rejected:
        report.rejects_file = rejects_path or default_rejects_path(path)
        write_rejects(source, rejected, report.rejects_file)
    return report
