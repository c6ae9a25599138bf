"""The worker process: runs renewal journeys and their activities against the configured Temporal.

`python worker.py` (or `renewals worker`) connects with the settings (RENEWALS_*), migrates the
database, and serves the task queue until interrupted. Several workers may run at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.worker import Interceptor, PollerBehaviorSimpleMaximum, Worker, WorkflowRunner

from activities.intake import IntakeActivities
from activities.renewal import JourneyActivities
from activities.sla import SlaActivities
from renewals.alerts import configure_alerts
from renewals.channels.factory import build_channels
from renewals.db.database import Database
from renewals.models import Channel, channel_queue
from renewals.observability.logs import configure_logging
from renewals.observability.runtime import install_metrics_runtime
from renewals.observability.telemetry import WorkerTelemetry
from renewals.settings import Settings, get_settings
from renewals.shutdown import run_until_stopped
from renewals.temporal.connection import connect
from workflows.intake import DailyIntake
from workflows.renewal import RenewalJourney
from workflows.runner import SANDBOXED_RUNNER, runs_inline, workflow_runner
from workflows.sla import PartnerApplication

__all__ = ["WORKFLOWS", "JourneyWorkers", "build_worker", "run_worker"]

log = logging.getLogger(__name__)
STOP_MARGIN_SECONDS = 15  # after the grace: cancelling what is left and reporting it to Temporal

WORKFLOWS: list[type] = [RenewalJourney, PartnerApplication, DailyIntake]
SEND_CHANNELS = (Channel.SMS, Channel.EMAIL, Channel.VK, Channel.ROBOT_CALL)


class JourneyWorkers:
    """The journey worker and one worker per sending channel, run and stopped together.

    Sends run on their channel's task queue (`channel_queue`), so each provider's rate limit is a
    server-side `max_task_queue_activities_per_second` that holds across every worker process.
    """

    def __init__(self, workers: list[Worker]) -> None:
        self.workers = workers
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> JourneyWorkers:
        for worker in self.workers:
            await self._stack.enter_async_context(worker)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def run(self) -> None:
        """Until cancelled (SIGINT or SIGTERM: renewals/shutdown.py) or one worker fails; then every
        worker shuts down gracefully: it stops polling, lets the activities in hand finish for its
        `graceful_shutdown_timeout`, cancels the rest and reports them. (Cancelling the SDK's own
        `Worker.run()` returned without waiting for them; its docs ask for `shutdown()` instead.)
        The stop is bounded (`stop_seconds`): an activity that ignores its cancellation, or a stuck
        shutdown in the SDK's core, is logged and left to the process's exit, not waited on forever."""
        running = asyncio.gather(*(worker.run() for worker in self.workers))
        try:
            await asyncio.shield(running)
        finally:
            stopping = asyncio.gather(*(worker.shutdown() for worker in self.workers))
            try:
                await asyncio.wait_for(stopping, self.stop_seconds())
            except TimeoutError:
                log.error("workers not shut down after %.0f s: leaving them", self.stop_seconds())
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(running, 1)  # retrieved; what stopped it is already on its way

    def stop_seconds(self) -> float:
        """The longest grace of the workers, plus time to cancel and report what is left."""
        graces = [worker.config().get("graceful_shutdown_timeout") or timedelta(0) for worker in self.workers]
        return max(graces, default=timedelta(0)).total_seconds() + STOP_MARGIN_SECONDS


# Concurrent workflow-task polls of the journey worker (the SDK's default is 5). The SDK gives the normal
# queue a fifth of them and the sticky queue the rest: at 5 that is one poll on the normal queue, where
# every new journey's first task waits (and, after a worker restart, every task), so a morning's intake
# ran its first tasks one round trip at a time. 10 gives two and eight (docs/performance.md, seventh
# round: bursts of 1,000 on two cores, first tasks during intake 46–51 → 62–66 a second).
WORKFLOW_TASK_POLLS = 10


def build_worker(
    client: Client,
    task_queue: str,
    activities: JourneyActivities,
    extra_workflows: Sequence[type] = (),
    fail_fast: bool = False,
    rates: Mapping[Channel, float | None] | None = None,
    extra_activities: Sequence[Callable[..., Any]] = (),
    cache_size: int = 1000,
    channel_slots: int = 100,
    runner: WorkflowRunner = SANDBOXED_RUNNER,
    interceptors: Sequence[Interceptor] = (),
    shutdown_grace: timedelta = timedelta(0),
) -> JourneyWorkers:
    """Workers for journeys: `task_queue` for workflows and bookkeeping activities, plus one queue
    per sending channel limited to `rates[channel]` activities a second (None: unlimited).
    `fail_fast` (tests, simulation) fails a workflow on any exception instead of retrying its task
    forever, so a bug shows up as an error rather than a hang. `cache_size` caps the sticky cache of
    the journey worker and `channel_slots` the concurrent sends of each channel worker (defaults: the
    SDK's). `runner` is the sandbox by default (tests, replay); the production worker and
    `renewals simulate` pass theirs (workflows/runner.py: unsandboxed unless RENEWALS_WORKFLOW_SANDBOX;
    unsandboxed, activations run on the event loop).
    `interceptors` observe every worker (metrics and log fields: renewals/observability).
    `shutdown_grace`: how long a stopping worker lets the activities in hand finish before it cancels
    them (tests stop at once; production: RENEWALS_WORKER_SHUTDOWN_GRACE_SECONDS)."""
    all_activities = [*activities.all(), *extra_activities]
    main = Worker(
        client,
        task_queue=task_queue,
        workflows=[*WORKFLOWS, *extra_workflows],
        activities=all_activities,
        workflow_runner=runner,
        workflow_failure_exception_types=[Exception] if fail_fast else [],
        max_cached_workflows=cache_size,
        workflow_task_poller_behavior=PollerBehaviorSimpleMaximum(WORKFLOW_TASK_POLLS),
        interceptors=list(interceptors),
        debug_mode=runs_inline(runner),  # activations on the event loop, not a thread: workflows/runner.py
        graceful_shutdown_timeout=shutdown_grace,
    )
    senders = [
        Worker(
            client,
            task_queue=channel_queue(task_queue, channel),
            activities=all_activities,
            max_task_queue_activities_per_second=(rates or {}).get(channel),
            max_concurrent_activities=channel_slots,
            interceptors=list(interceptors),
            graceful_shutdown_timeout=shutdown_grace,
        )
        for channel in SEND_CHANNELS
    ]
    return JourneyWorkers([main, *senders])


def assemble_worker(
    settings: Settings, client: Client, db: Database, runtime: Runtime
) -> tuple[JourneyWorkers, WorkerTelemetry]:
    """The production worker from the settings — what `renewals worker` and `./run stack` both run:
    the channels (with their telemetry), the journey's activities, alerts and the SLA's notices through
    the same channels (issue 13: pauses alert the configured destination; SLA notices go by e-mail,
    SMS and the partner cabinet's webhook, each once through the journey's send path; a production
    configuration without SLA destinations refuses to start), the daily intake's activity."""
    telemetry = WorkerTelemetry(runtime, db, settings.window_spread_minutes)
    channels = telemetry.channels(build_channels(settings, db))
    journey = JourneyActivities(db, channels, pause_minutes=settings.channel_pause_minutes)
    configure_alerts(settings.alerts, channels.providers.get(Channel.EMAIL))
    worker = build_worker(
        client,
        settings.task_queue,
        journey,
        rates=settings.rates(),
        cache_size=settings.workflow_cache_size,
        runner=workflow_runner(settings.workflow_sandbox),
        channel_slots=settings.channel_activity_slots,
        extra_activities=[
            *SlaActivities.for_worker(db, settings, journey.send).all(),
            *IntakeActivities(
                client, db, settings.send_window(), settings.experiments, settings.gate()
            ).all(),
        ],
        interceptors=telemetry.interceptors(channels),
        shutdown_grace=timedelta(seconds=settings.worker_shutdown_grace_seconds),
    )
    return worker, telemetry


async def run_worker(settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    # Before the client: its runtime serves the SDK's metrics and ours on RENEWALS_METRICS_ADDRESS.
    runtime = install_metrics_runtime(settings.metrics_address)
    db = Database(settings.database_url)
    await db.migrate()
    client = await connect(settings)
    worker, telemetry = assemble_worker(settings, client, db, runtime)
    logging.getLogger(__name__).info(
        "worker serving %s on %s (metrics: %s, health: %s)",
        settings.task_queue,
        settings.temporal_address,
        settings.metrics_address or "off",
        settings.worker_health_address or "off",
    )
    running = asyncio.create_task(worker.run())
    try:
        async with telemetry.serving(
            client, lambda: not running.done(), settings.worker_health_address, settings.metrics_poll_seconds
        ):
            await running
    finally:
        running.cancel()  # a no-op once it ended; on an error here, its own bounded stop
        await asyncio.wait([running])
        await db.dispose()


def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)  # JSON lines unless on a terminal
    run_until_stopped(run_worker(settings))  # SIGINT or SIGTERM: a graceful shutdown, exit 0


if __name__ == "__main__":
    main()
