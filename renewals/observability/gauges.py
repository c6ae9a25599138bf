"""Gauges read from the application database: what every worker sees the same (aggregate with `max`).

`DatabaseGauges.read` is one snapshot — the outbox backlog per channel and its oldest row, the
channel pauses in force, journeys by stage, operator tasks by status and the oldest one still open —
used by the worker's metrics (`publish`, every `metrics_poll_seconds`) and the webhook service's
status page alike, so the page and Prometheus never disagree.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import func, select
from temporalio.client import Client

from renewals.db.database import Database, as_utc
from renewals.db.tables import ChannelPauseRow, JourneyRow, OperatorTaskRow, OutboxRow
from renewals.journey_api import TERMINAL_STAGES, Stage
from renewals.models import Channel
from renewals.observability.metrics import AppMetrics

log = logging.getLogger(__name__)
SEND_CHANNELS = (Channel.SMS, Channel.EMAIL, Channel.VK, Channel.ROBOT_CALL)
TASK_STATUSES = ("open", "claimed", "closed")


@dataclass(frozen=True)
class Pause:
    channel: str
    until: datetime
    reason: str


@dataclass
class Snapshot:
    taken_at: datetime
    pending: dict[str, int] = field(default_factory=dict)  # channel → unsettled outbox rows
    oldest_pending: dict[str, float] = field(default_factory=dict)  # channel → age in seconds
    pauses: list[Pause] = field(default_factory=list)  # in force now
    journeys: dict[str, int] = field(default_factory=dict)  # stage → journeys
    tasks: dict[str, int] = field(default_factory=dict)  # status → operator tasks
    oldest_open_task: float = 0.0  # seconds
    sends_today: dict[tuple[str, str], int] = field(default_factory=dict)  # (channel, status) → rows


RUNNING = "WorkflowType = 'RenewalJourney' AND ExecutionStatus = 'Running' AND JourneyStage = '{stage}'"


class DatabaseGauges:
    """Journeys by stage: the finished ones from the `journeys` table (a journey records its outcome
    there when it ends), the running ones from Temporal's visibility (`JourneyStage`) when a `client`
    is given — the database does not follow a running journey's stage. One count per stage a running
    journey can be in (SQL visibility groups only by ExecutionStatus)."""

    def __init__(self, db: Database, client: Client | None = None) -> None:
        self.db = db
        self.client = client
        self._visibility_warned = False

    async def running_by_stage(self) -> dict[str, int]:
        client = self.client
        if client is None:
            return {}
        running = [stage.value for stage in Stage if stage not in TERMINAL_STAGES]
        try:
            counts = await asyncio.gather(
                *(
                    client.count_workflows(RUNNING.format(stage=stage), rpc_timeout=timedelta(seconds=5))
                    for stage in running
                )
            )
        except Exception as error:  # visibility unavailable: finished journeys only, this time
            if not self._visibility_warned:
                log.warning("running journeys not counted by stage: %s", type(error).__name__)
                self._visibility_warned = True
            return {}
        return {stage: counted.count for stage, counted in zip(running, counts, strict=True)}

    async def read(self, now: datetime | None = None, today: date | None = None) -> Snapshot:
        """One consistent-enough snapshot (a few small aggregate queries). `today` (UTC date) bounds
        "sends today" by the rows' last change."""
        now = now or datetime.now(UTC)
        day = today or now.date()
        start = datetime.combine(day, time(0), UTC)
        snap = Snapshot(taken_at=now)
        async with self.db.engine.connect() as connection:
            pending = await connection.execute(
                select(OutboxRow.channel, func.count(), func.min(OutboxRow.created_at))
                .where(OutboxRow.status == "pending")
                .group_by(OutboxRow.channel)
            )
            for channel, count, oldest in pending:
                snap.pending[channel] = int(count)
                snap.oldest_pending[channel] = (
                    max((now - as_utc(oldest)).total_seconds(), 0.0) if oldest else 0.0
                )
            for row in await connection.execute(
                select(ChannelPauseRow.channel, ChannelPauseRow.paused_until, ChannelPauseRow.reason)
            ):
                if as_utc(row.paused_until) > now:
                    snap.pauses.append(Pause(row.channel, as_utc(row.paused_until), row.reason))
            stages = await connection.execute(
                select(JourneyRow.stage, func.count()).group_by(JourneyRow.stage)
            )
            snap.journeys = {stage: int(count) for stage, count in stages}
            tasks = await connection.execute(
                select(OperatorTaskRow.status, func.count()).group_by(OperatorTaskRow.status)
            )
            snap.tasks = {status: int(count) for status, count in tasks}
            oldest_task = (
                await connection.execute(
                    select(func.min(OperatorTaskRow.created_at)).where(OperatorTaskRow.status != "closed")
                )
            ).scalar_one_or_none()
            if oldest_task is not None:
                snap.oldest_open_task = max((now - as_utc(oldest_task)).total_seconds(), 0.0)
            today_rows = await connection.execute(
                select(OutboxRow.channel, OutboxRow.status, func.count())
                .where(OutboxRow.updated_at >= start, OutboxRow.updated_at < start + timedelta(days=1))
                .group_by(OutboxRow.channel, OutboxRow.status)
            )
            snap.sends_today = {(channel, status): int(count) for channel, status, count in today_rows}
        for stage, count in (await self.running_by_stage()).items():
            snap.journeys[stage] = snap.journeys.get(stage, 0) + count
        return snap

    def publish(self, snap: Snapshot, metrics: AppMetrics) -> None:
        """Every label value set each time, zeros included: a backlog that drains shows as 0, not as
        the last non-zero value Prometheus saw."""
        paused = {pause.channel for pause in snap.pauses}
        for channel in SEND_CHANNELS:
            name = channel.value
            metrics.outbox_pending.set(snap.pending.get(name, 0), {"channel": name})
            metrics.outbox_oldest.set(snap.oldest_pending.get(name, 0.0), {"channel": name})
            metrics.channel_paused.set(1 if name in paused else 0, {"channel": name})
        for stage in Stage:
            metrics.journeys.set(snap.journeys.get(stage.value, 0), {"stage": stage.value})
        for status in TASK_STATUSES:
            metrics.operator_tasks.set(snap.tasks.get(status, 0), {"status": status})
        metrics.operator_oldest.set(snap.oldest_open_task, {})

    async def run(self, metrics: AppMetrics, every: float) -> None:
        """Publish a snapshot every `every` seconds until cancelled; a failed read is logged and
        tried again next time (the readiness endpoint says whether the database answers)."""
        while True:
            try:
                self.publish(await self.read(), metrics)
            except Exception as error:
                log.warning("database gauges not read: %s", type(error).__name__)
            await asyncio.sleep(every)
