"""`renewals import FILE`: read, validate, store the good rows, write the rejects file, report."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from renewals.db.database import Database
from renewals.intake.fields import Rejection
from renewals.intake.portfolio_store import (
    Change,
    known_agents,
    known_centres,
    policies_of_clients,
    policies_referring,
    store_agent,
    store_centre,
    store_policies,
)
from renewals.intake.records import FileFormatError, SourceRow, open_source
from renewals.intake.rejects import Rejects, default_rejects_path
from renewals.intake.validate import Validator, unreadable_rejection
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
    keep_changed: bool = True,
) -> ImportReport:
    """Store every valid row (idempotently) and write rejected rows to the rejects file, if any.

    The file is streamed: checked whole first (encoding, header), then read twice — the agents and
    centres, then the policies `BATCH` rows at a time, each batch validated, stored and its rejects
    written before the next is read — so memory does not grow with the file. `keep_changed=False`
    (`--no-sync`) keeps no list of the changed policies for the journeys either."""
    source = open_source(path)
    report = ImportReport(file=str(path))
    if total is not None:
        total(source.lines)
    rejects = Rejects(source, rejects_path or default_rejects_path(path))
    if rejects.path.resolve() == path.resolve():  # the file is read while the rejects are written
        raise FileFormatError(f"{path}: the rejects file cannot be the file being imported")
    validator = Validator(today, await known_agents(db), await known_centres(db))
    rejected_lines: set[int] = set()  # the first pass's, skipped by the second

    def step(count: int = 1) -> None:
        if advance is not None:
            advance(count)

    async def counted(kind: str, stored: Awaitable[Change]) -> bool:
        """Count an agent's or centre's store; True if it changed, so its clients' journeys must hear."""
        change = await stored
        report.counts[f"{kind} {change}"] += 1
        step()
        return change is Change.UPDATED

    try:
        for row in source.stream():
            report.rows += 1
            problems = [unreadable_rejection(row)] if row.unreadable else validator.first_pass(row)
            if problems:
                rejected_lines.add(row.line)
                report.rejections.extend(problems)
                rejects.write(row, problems)
                step()
        moved_agents = {
            a.id for _, a in validator.accepted_agents if await counted("agent", store_agent(db, a))
        }
        moved_centres = {
            c.id for _, c in validator.accepted_centres if await counted("centre", store_centre(db, c))
        }
        policy_rows = (
            row
            for row in source.stream()
            if not row.unreadable and row.line not in rejected_lines and validator.is_policy(row)
        )
        for batch_rows in _batches(policy_rows, BATCH):
            validated = validator.policies(batch_rows)
            for row, problems in validated.rejected:
                report.rejections.extend(problems)
                rejects.write(row, problems)
            batch = validated.policies
            changes = await store_policies(db, [(record.policy, record.cancelled) for record in batch])
            for record, change in zip(batch, changes, strict=True):
                report.counts[f"policy {change}"] += 1
                if change is not Change.UNCHANGED and keep_changed:
                    report.changed.append((record.policy, record.cancelled))
            step(len(batch_rows))
    finally:
        rejects.close()
    if keep_changed:
        await _queue_related(db, report, moved_agents, moved_centres, today)
    report.rejections.sort(key=lambda rejection: rejection.line)  # the two passes' in line order
    report.rejected_rows = rejects.rows
    report.rejects_file = rejects.path if rejects.rows else None
    return report


async def _queue_related(
    db: Database, report: ImportReport, agents: set[str], centres: set[str], today: date
) -> None:
    """Queue the policies a change reaches besides its own row: those of a changed agent or centre (their
    journeys carry the agent's card and the centre's phone), and the other policies of a client whose
    row changed (one client row serves all of one person's policies)."""
    people = {(p.client.phone, p.client.last_name, p.client.first_name) for p, _ in report.changed}
    referring = await policies_referring(db, agents, centres, today) if agents or centres else []
    of_clients = await policies_of_clients(db, people, today) if people else []
    queued = {(policy.number, policy.expires_on) for policy, _ in report.changed}
    for stored in [*referring, *of_clients]:
        if (stored.policy.number, stored.policy.expires_on) not in queued:
            queued.add((stored.policy.number, stored.policy.expires_on))
            report.changed.append((stored.policy, stored.cancelled))


def _batches(rows: Iterator[SourceRow], size: int) -> Iterator[list[SourceRow]]:
    batch: list[SourceRow] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
