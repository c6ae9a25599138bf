"""`renewals import FILE`: read, validate, store the good rows, write the rejects file, report."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
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
    changed: int = 0  # policies handed to the journeys' sink (changed rows, and the rows a change reaches)

    @property
    def ok(self) -> bool:
        return self.rejected_rows == 0


Progress = Callable[[int], None]
Changes = Sequence[tuple[Policy, bool]]  # (policy as stored now, cancelled)
ChangeSink = Callable[[Changes], Awaitable[None]]  # passes a batch of changes on to running journeys
BATCH = 500  # policy rows per transaction: one commit per batch, not one per row


async def import_file(
    db: Database,
    path: Path,
    today: date,
    rejects_path: Path | None = None,
    total: Callable[[int], None] | None = None,
    advance: Progress | None = None,
    on_changed: ChangeSink | None = None,
) -> ImportReport:
    """Store every valid row (idempotently) and write rejected rows to the rejects file, if any.

    The file is streamed: checked whole first (encoding, header), then read twice — the agents and
    centres, then the policies `BATCH` rows at a time, each batch validated, stored and its rejects
    written before the next is read — so memory does not grow with the file. Each batch's changed
    policies go to `on_changed` (the journeys' sync) as the batch is stored, with the other policies
    of a client whose row changed; the policies of a changed agent or centre go last, read back once
    everything is stored. Nothing is kept for later, so a sync does not grow with the file either;
    without `on_changed` (`--no-sync`) changes are only counted."""
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
        moved = _Moved(moved_agents, moved_centres)
        for batch_rows in _batches(policy_rows, BATCH):
            validated = validator.policies(batch_rows)
            for row, problems in validated.rejected:
                report.rejections.extend(problems)
                rejects.write(row, problems)
            batch = validated.policies
            changes = await store_policies(db, [(record.policy, record.cancelled) for record in batch])
            changed: list[tuple[Policy, bool]] = []
            for record, change in zip(batch, changes, strict=True):
                report.counts[f"policy {change}"] += 1
                if change is not Change.UNCHANGED:
                    changed.append((record.policy, record.cancelled))
            if on_changed is None:  # `--no-sync`: counted, nothing read back
                report.changed += len(changed)
            else:
                await _pass_on(report, on_changed, await _with_clients_others(db, changed, moved, today))
            step(len(batch_rows))
    finally:
        rejects.close()
    if on_changed is not None and (moved_agents or moved_centres):
        referring = await policies_referring(db, moved_agents, moved_centres, today)
        for first in range(0, len(referring), BATCH):
            chunk = referring[first : first + BATCH]
            await _pass_on(report, on_changed, [(stored.policy, stored.cancelled) for stored in chunk])
    report.rejections.sort(key=lambda rejection: rejection.line)  # the two passes' in line order
    report.rejected_rows = rejects.rows
    report.rejects_file = rejects.path if rejects.rows else None
    return report


@dataclass(frozen=True)
class _Moved:
    """The agents and centres this import changed: their policies are passed on last, once, as stored
    after the whole file (a batch that passed one on would pass it on twice)."""

    agents: set[str]
    centres: set[str]

    def reaches(self, policy: Policy) -> bool:
        centre = policy.regional_centre
        return policy.agent.id in self.agents or (centre is not None and centre.id in self.centres)


async def _with_clients_others(db: Database, changed: Changes, moved: _Moved, today: date) -> Changes:
    """A batch's changed policies and the other policies of their clients (one client row serves all
    of one person's policies, so a new e-mail reaches every journey of theirs), each once, without
    those a changed agent or centre reaches (passed on at the end)."""
    if not changed:
        return []
    people = {(p.client.phone, p.client.last_name, p.client.first_name) for p, _ in changed}
    others = [(s.policy, s.cancelled) for s in await policies_of_clients(db, people, today)]
    seen: set[tuple[str, date]] = set()
    passed: list[tuple[Policy, bool]] = []
    for policy, cancelled in [*changed, *others]:
        key = (policy.number, policy.expires_on)
        if key not in seen and not moved.reaches(policy):
            seen.add(key)
            passed.append((policy, cancelled))
    return passed


async def _pass_on(report: ImportReport, on_changed: ChangeSink, changes: Changes) -> None:
    if changes:
        report.changed += len(changes)
        await on_changed(changes)


def _batches(rows: Iterator[SourceRow], size: int) -> Iterator[list[SourceRow]]:
    batch: list[SourceRow] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
