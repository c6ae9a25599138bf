"""Starting journeys for due policies, and telling running journeys about policy changes.

Both are idempotent: a journey that already runs is attached to, never duplicated; a change reaches a
running journey once (the `journey_sync` table keeps a hash of the policy each journey last received),
and a cancellation is signalled once.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import select
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from renewals.db.database import Database
from renewals.db.tables_ops import JourneySyncRow
from renewals.db.upsert import upsert
from renewals.intake.portfolio_store import StoredPolicy, policies_expiring
from renewals.intake.start_plan import StartPlan
from renewals.journey_api import EventType, JourneyEvent
from renewals.models import Policy, journey_id
from renewals.sendwindow import SendWindow
from renewals.temporal.journeys import execution_status, send_event, start_journey, update_policy

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")
START_CONCURRENCY = 100  # policies in flight in `renewals start` (and `renewals import`'s sync)
SAVE_CHUNK = 1000  # journey_sync rows per statement (4 parameters each: under SQLite's limit)


class Sync(StrEnum):
    NO_JOURNEY = "no journey"
    FINISHED = "journey finished"
    UNCHANGED = "unchanged"
    UPDATED = "updated"
    CANCELLED = "cancelled"
    REFUSED = "refused"


class Start(StrEnum):
    STARTED = "started"
    RUNNING = "already running"
    FINISHED = "already finished"
    CANCELLED = "cancelled, not started"
    FAILED = "failed"


@dataclass
class StartSummary:
    counts: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        return ", ".join(f"{name}: {count}" for name, count in sorted(self.counts.items())) or "nothing due"


def policy_hash(policy: Policy) -> str:
    return hashlib.sha256(policy.model_dump_json().encode()).hexdigest()


async def _sync_row(db: Database, workflow_id: str) -> JourneySyncRow | None:
    async with db.session() as session:
        return await session.get(JourneySyncRow, workflow_id)


def _sync_values(policy: Policy, cancelled: bool, at: datetime) -> dict[str, Any]:
    return {
        "journey_id": journey_id(policy.number, policy.expires_on),
        "policy_hash": policy_hash(policy),
        "cancelled_signalled": cancelled,
        "synced_at": at,
    }


async def _save_sync(db: Database, policy: Policy, cancelled: bool) -> None:
    async with db.session() as session, session.begin():
        values = _sync_values(policy, cancelled, datetime.now(UTC))
        await session.execute(upsert(db.dialect, JourneySyncRow, values, ["journey_id"]))


async def sync_journey(
    client: Client, db: Database, policy: Policy, cancelled: bool, plan: StartPlan | None = None
) -> tuple[Sync, str]:
    """Bring a running journey up to date: `policy_cancelled` once, or `update_policy` on a change
    (the policy as the journey receives it: `plan` puts the gate's measured rates on the agent card)."""
    if plan is not None:
        policy = plan.policy(policy)
    workflow_id = journey_id(policy.number, policy.expires_on)
    status = await execution_status(client, workflow_id)
    if status is None:
        return Sync.NO_JOURNEY, ""
    if status is not WorkflowExecutionStatus.RUNNING:
        return Sync.FINISHED, ""
    known = await _sync_row(db, workflow_id)
    if cancelled:
        if known is not None and known.cancelled_signalled:
            return Sync.UNCHANGED, ""
        await send_event(client, workflow_id, JourneyEvent(type=EventType.POLICY_CANCELLED, source="intake"))
        await _save_sync(db, policy, cancelled=True)
        return Sync.CANCELLED, ""
    if known is not None and known.policy_hash == policy_hash(policy):
        return Sync.UNCHANGED, ""
    try:
        await update_policy(client, workflow_id, policy)
    except WorkflowUpdateFailedError as error:
        reason = str(getattr(error.cause, "message", None) or error.cause or error)
        log.warning("journey %s refused the policy update: %s", workflow_id, reason)
        return Sync.REFUSED, reason
    await _save_sync(db, policy, cancelled=False)
    return Sync.UPDATED, ""


async def sync_journeys(
    client: Client,
    db: Database,
    changes: Sequence[tuple[Policy, bool]],
    concurrency: int = START_CONCURRENCY,
    plan: StartPlan | None = None,
) -> list[tuple[Policy, Sync, str]]:
    """`sync_journey` for each changed policy (as an import reports them), `concurrency` at a time:
    a first import of thousands of policies asks Temporal about each, and that is round trips."""

    async def one(change: tuple[Policy, bool]) -> tuple[Policy, Sync, str]:
        result, reason = await sync_journey(client, db, *change, plan=plan)
        return change[0], result, reason

    return await bounded(changes, one, concurrency)


async def bounded(items: Sequence[T], call: Callable[[T], Awaitable[R]], concurrency: int) -> list[R]:
    """`call` for every item, at most `concurrency` at a time; results in the items' order. The first
    failure (or a cancellation, e.g. a CLI timeout) cancels the calls still waiting or running, rather
    than leaving them to run on unobserved."""
    semaphore = asyncio.Semaphore(concurrency)

    async def one(item: T) -> R:
        async with semaphore:
            return await call(item)

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(item)) for item in items]
    except BaseExceptionGroup as failed:  # the callers (and a CLI's error line) expect the error itself
        raise failed.exceptions[0] from None
    return [task.result() for task in tasks]


async def start_or_sync(
    client: Client,
    db: Database,
    stored: StoredPolicy,
    task_queue: str,
    window: SendWindow,
    known: JourneySyncRow | None = None,
    started: list[Policy] | None = None,
    plan: StartPlan | None = None,
) -> tuple[Start | Sync, str]:
    """Start the term's journey if it has none; otherwise pass on any change to the running one.

    `known` is the term's `journey_sync` row, if the caller has read it. A term with none was never
    started by us: it is started straight away, and only if Temporal already has it (started
    elsewhere, or finished) does the slower describe-and-sync path run. With `started` given, the
    policies started here are appended to it for the caller to record in one batch (`save_started`);
    otherwise each is recorded at once. `plan`: the measured gate rates and the experiments' holdouts
    a journey gets (renewals/intake/start_plan.py)."""
    plan = plan or StartPlan(date.min)
    policy = plan.policy(stored.policy)
    workflow_id = journey_id(policy.number, policy.expires_on)
    if known is None and not stored.cancelled:
        try:
            await start_journey(
                client, policy, task_queue, window, attach=False, holdouts=plan.holdouts(policy)
            )
        except WorkflowAlreadyStartedError:
            pass  # running or finished already: find out which below
        else:
            await plan.record(db, policy)
            if started is None:
                await save_started(db, [policy])
            else:
                started.append(policy)
            return Start.STARTED, ""
    status = await execution_status(client, workflow_id)
    if status is None:
        if stored.cancelled:
            return Start.CANCELLED, ""
        await start_journey(client, policy, task_queue, window, holdouts=plan.holdouts(policy))
        await plan.record(db, policy)
        await save_started(db, [policy])
        return Start.STARTED, ""
    if status is not WorkflowExecutionStatus.RUNNING:
        return Start.FINISHED, ""
    result, reason = await sync_journey(client, db, policy, stored.cancelled)
    return (Start.RUNNING if result is Sync.UNCHANGED else result), reason


async def save_started(db: Database, policies: Sequence[Policy]) -> None:
    """Record what each newly started journey was given, in one transaction of multi-row upserts
    (an ORM merge per journey read each row first: 10,000 starts spent seconds here)."""
    if not policies:
        return
    now = datetime.now(UTC)
    rows = [_sync_values(policy, False, now) for policy in policies]
    async with db.session() as session, session.begin():
        for first in range(0, len(rows), SAVE_CHUNK):
            chunk = rows[first : first + SAVE_CHUNK]
            await session.execute(upsert(db.dialect, JourneySyncRow, chunk, ["journey_id"]))


async def _sync_rows(db: Database, workflow_ids: Sequence[str]) -> dict[str, JourneySyncRow]:
    rows: dict[str, JourneySyncRow] = {}
    async with db.session() as session:
        for first in range(0, len(workflow_ids), 500):
            chunk = workflow_ids[first : first + 500]
            query = select(JourneySyncRow).where(JourneySyncRow.journey_id.in_(chunk))
            rows.update({row.journey_id: row for row in (await session.scalars(query)).all()})
    return rows


async def start_due_journeys(
    client: Client,
    db: Database,
    today: date,
    horizon_days: int,
    task_queue: str,
    window: SendWindow,
    total: Callable[[int], None] | None = None,
    advance: Callable[[int], None] | None = None,
    concurrency: int = START_CONCURRENCY,
    plan: StartPlan | None = None,
) -> StartSummary:
    """Every policy ending within the horizon gets its journey (once); the summary counts outcomes.

    Up to `concurrency` policies are in flight at once: a start is a round trip to Temporal, so one
    at a time would leave both the server and this process idle most of the time."""
    due = await policies_expiring(db, today, horizon_days)
    if total is not None:
        total(len(due))
    known = await _sync_rows(db, [journey_id(s.policy.number, s.policy.expires_on) for s in due])
    summary = StartSummary()
    started: list[Policy] = []

    async def one(stored: StoredPolicy) -> None:
        workflow_id = journey_id(stored.policy.number, stored.policy.expires_on)
        try:
            result, reason = await start_or_sync(
                client, db, stored, task_queue, window, known.get(workflow_id), started, plan
            )
        except RPCError as error:
            result, reason = Start.FAILED, f"{error.status.name if error.status else ''} {error.message}"
        summary.counts[result.value] += 1
        if reason:
            summary.problems.append(f"{stored.policy.number}: {result.value}: {reason}")
        if advance is not None:
            advance(1)

    try:
        await bounded(due, one, concurrency)
    finally:
        await save_started(db, started)  # even if one start raised: what started stays recorded
    summary.problems.sort()
    return summary
