"""What the phases share: percentiles, bounded concurrency, workflow counts, a worker's environment."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from temporalio.client import Client

from bench.infra import Gateway, Server, free_port

START_CONCURRENCY = 100  # in-flight StartWorkflowExecution calls


def percentiles(values: Iterable[float]) -> dict[str, float | None]:
    data = sorted(values)
    if not data:
        return {"p50": None, "p95": None, "p99": None, "max": None}

    def pick(q: float) -> float:
        return round(data[min(len(data) - 1, max(0, round(q * len(data)) - 1))], 3)

    return {"p50": pick(0.50), "p95": pick(0.95), "p99": pick(0.99), "max": round(data[-1], 3)}


async def bounded(calls: Iterable[Callable[[], Awaitable[Any]]], concurrency: int) -> None:
    semaphore = asyncio.Semaphore(concurrency)

    async def one(call: Callable[[], Awaitable[Any]]) -> None:
        async with semaphore:
            await call()

    await asyncio.gather(*(one(call) for call in calls))


async def at_least(client: Client, query: str, target: int) -> bool:
    """True once `target` workflows match the visibility `query`."""
    return (await client.count_workflows(query)).count >= target


def worker_env(server: Server, queue: str, db_url: str, gateway: Gateway | None) -> dict[str, str]:
    env = {
        **os.environ,
        "RENEWALS_TEMPORAL_ADDRESS": server.address,
        "RENEWALS_TASK_QUEUE": queue,
        "RENEWALS_DATABASE_URL": db_url,
        "RENEWALS_CHANNELS": "gateway" if gateway else "database",
        # The bench measures our code and Temporal, not VK's contractual 20 requests/s (see report).
        "RENEWALS_VK_PER_SECOND": "100000",
        "RENEWALS_ENCRYPTION_KEYS": json.dumps(server.keyring.to_lines()),  # the bench client's keys
        # Ports of its own, as on a host of its own: a second bench or a worker already running keeps its.
        "RENEWALS_METRICS_ADDRESS": f"127.0.0.1:{free_port()}",
        "RENEWALS_WORKER_HEALTH_ADDRESS": f"127.0.0.1:{free_port()}",
        # Stopped between phases with sends possibly in hand: their retries are the next phase's noise
        # either way, so no production grace of 30 s per worker.
        "RENEWALS_WORKER_SHUTDOWN_GRACE_SECONDS": "1",
    }
    if gateway:
        env |= {"RENEWALS_GATEWAY_URL": gateway.url, "RENEWALS_GATEWAY_SMTP_PORT": str(gateway.smtp_port)}
    return env
