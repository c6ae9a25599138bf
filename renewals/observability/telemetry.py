"""Everything a worker process adds for observability, assembled in one place so `worker.py` and
`renewals stack` wire it the same way: the metrics (`AppMetrics` on the runtime's meter), the timed
providers, the interceptor, the database gauges and the health endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.worker import Interceptor

from renewals.channels.base import Channels, PermanentSendError
from renewals.db.database import Database
from renewals.models import Channel
from renewals.observability.gauges import DatabaseGauges
from renewals.observability.health import health_server
from renewals.observability.interceptor import ObservingInterceptor
from renewals.observability.metrics import AppMetrics
from renewals.observability.providers import timed_channels

log = logging.getLogger(__name__)


class WorkerTelemetry:
    """`runtime` is the one the worker's client was connected with (its meter is the Prometheus
    endpoint's); `spread_minutes` is `window_spread_minutes` (the lateness alert's margin)."""

    def __init__(self, runtime: Runtime, db: Database, spread_minutes: float = 0.0) -> None:
        self.db = db
        self.metrics = AppMetrics(runtime.metric_meter)
        self.metrics.window_spread.set(spread_minutes * 60.0, {})

    def channels(self, channels: Channels) -> Channels:
        """The providers, each call timed."""
        return timed_channels(channels, self.metrics)

    def interceptors(self, channels: Channels) -> list[Interceptor]:
        def provider_of(channel: Channel) -> str:
            try:
                return channels.provider(channel).name
            except PermanentSendError:
                return "none"

        return [ObservingInterceptor(self.metrics, self.db, provider_of)]

    @contextlib.asynccontextmanager
    async def serving(
        self,
        client: Client,
        alive: Callable[[], bool],
        health_address: str | None,
        poll_seconds: float,
    ) -> AsyncIterator[None]:
        """For the body: the database gauges every `poll_seconds`, and `/health/live` and
        `/health/ready` on `health_address` (None or "": not served)."""
        tasks = [asyncio.create_task(DatabaseGauges(self.db, client).run(self.metrics, poll_seconds))]
        server = health_server(health_address, client, self.db, alive) if health_address else None
        if server is not None:
            tasks.append(asyncio.create_task(server.serve()))
        try:
            yield
        finally:
            if server is not None:
                server.should_exit = True
            for task in tasks[:1]:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(task, timeout=10)
