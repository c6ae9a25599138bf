"""Phase 3, memory: the worker's RSS while 1k, 10k, 100k … journeys sleep (their first touchpoint is
10 days away) and, with `restart`, whether they all survive a restart of a persistent dev server."""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
import uuid
from datetime import date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from temporalio.client import Client

from bench.infra import RssSampler, Server, dev_server, memory_kib, process, wait_for_text, wait_until
from bench.phases.common import START_CONCURRENCY, at_least, bounded, worker_env
from renewals.models import Policy
from renewals.sendwindow import SendWindow

AGENT = {"id": "A-1", "name": "Петрова Анна", "phone": "+79031112233"}
CENTRE = {"id": "msk", "name": "Москва", "phone": "+74957770000"}


def sleeping_policy(i: int, expires_on: date) -> Policy:
    """A renewal-centre КАСКО policy; its journey's first touchpoint is weeks away."""
    client = {
        "last_name": "Иванов",
        "first_name": "Иван",
        "phone": f"+7916{i:07d}",
        "email": f"m{i}@example.org",
        "vk_id": str(10_000 + i),
    }
    return Policy.model_validate(
        {
            "number": f"7200K/001/{i:06d}/26",
            "product": "KASKO",
            "expires_on": expires_on,
            "renewal_centre": True,
            "client": client,
            "agent": AGENT,
            "regional_centre": CENTRE,
        }
    )


RESTART_SAMPLE = 200  # journeys queried after the restart: each a workflow task on the restarted server


async def measure(server: Server, steps: list[int], workdir: Path, restart: bool = False) -> dict[str, Any]:
    """`restart` (`server` persistent, on its SQLite file): after the last step the server is stopped
    and started again on that file and port while the worker keeps running."""
    from renewals.temporal.journeys import start_journey

    client = server.client
    queue = f"mem-{uuid.uuid4().hex[:8]}"
    db_url = f"sqlite+aiosqlite:///{workdir}/{queue}.db"
    log = workdir / f"{queue}-worker.log"
    expires_on = datetime.now(ZoneInfo("Europe/Moscow")).date() + timedelta(days=40)
    window = SendWindow()
    results: list[dict[str, Any]] = []
    with process([sys.executable, "worker.py"], log, worker_env(server, queue, db_url, None)) as worker:
        await wait_for_text(log, "worker serving", worker, 120)
        await asyncio.sleep(2)
        idle = memory_kib(worker.pid)["VmRSS"]
        done = 0
        for target in steps:
            policies = [sleeping_policy(i, expires_on) for i in range(done, target)]
            with RssSampler(worker.pid, interval=0.5) as rss:
                t0 = time.monotonic()
                await bounded(
                    (partial(start_journey, client, p, queue, window) for p in policies), START_CONCURRENCY
                )
                start_seconds = time.monotonic() - t0
                query = f"TaskQueue = '{queue}' AND JourneyStage = 'scheduled'"
                asleep = partial(at_least, client, query, target)
                await wait_until(asleep, 3600, f"{target} sleeping", every=1)
                settled_seconds = time.monotonic() - t0
                await asyncio.sleep(3)
                now = memory_kib(worker.pid)["VmRSS"]
            done = target
            results.append(
                {
                    "sleeping": target,
                    "started_this_step": len(policies),
                    "start_seconds": round(start_seconds, 1),
                    "start_rate_per_s": round(len(policies) / start_seconds, 1),
                    "all_asleep_after_s": round(settled_seconds, 1),
                    "rss_mib": round(now / 1024, 1),
                    "rss_peak_in_step_mib": round(rss.peak_kib / 1024, 1),
                }
            )
            # Kept as it goes: a run stopped during a long step still has the steps before it.
            (workdir / "memory-steps.json").write_text(json.dumps(results, indent=2))
            print(
                f"  memory: {target} sleeping, worker RSS {now / 1024:.0f} MiB "
                f"(peak {rss.peak_kib / 1024:.0f}), took {settled_seconds:.0f} s",
                flush=True,
            )
        restarted = await _restart(server, workdir, queue, done) if restart else None
        peak = memory_kib(worker.pid)["VmHWM"]
    rss_values = [r["rss_mib"] for r in results]
    return {
        "server": server.mode,
        "restart": restarted,
        "idle_rss_mib": round(idle / 1024, 1),
        "steps": results,
        "worker_peak_rss_mib": round(peak / 1024, 1),
        "flat_ratio_last_to_first": round(rss_values[-1] / rss_values[0], 2) if rss_values else None,
    }


async def _restart(server: Server, workdir: Path, queue: str, sleeping: int) -> dict[str, Any]:
    """Stop the dev server, start it again on the same file and port, and check the journeys (`survivors`)."""
    db_file = server.db_file
    if db_file is None:
        raise ValueError("a restart needs a persistent dev server (mode 'sqlite')")
    port = int(server.address.rsplit(":", 1)[1])
    t0 = time.monotonic()
    await server.env.shutdown()
    down_seconds = time.monotonic() - t0
    old_gone = server.pid is None or not _alive(server.pid)
    async with dev_server("sqlite", workdir, db_file=db_file, port=port, keyring=server.keyring) as again:
        up_seconds = time.monotonic() - t0
        result = await survivors(again.client, queue, sleeping)
    result |= {
        "old_server_gone": old_gone,
        "servers": [server.pid, again.pid],
        "survived": old_gone and result["survived"],
        "server_stop_s": round(down_seconds, 1),
        "server_back_after_s": round(up_seconds, 1),
        "db_file_mib": round(db_file.stat().st_size / 2**20, 1),
    }
    print(f"  restart: {result}", flush=True)
    return result


async def survivors(client: Client, queue: str, sleeping: int) -> dict[str, Any]:
    """Whether every one of `sleeping` journeys on `queue` is still running and asleep, and a random
    sample answers its status query: for a journey outside the worker's cache that is a replay of its
    history as the (restarted) server serves it."""
    from renewals.journey_api import Stage
    from workflows.renewal import RenewalJourney

    on_queue = f"TaskQueue = '{queue}'"
    running = (await client.count_workflows(f"{on_queue} AND ExecutionStatus = 'Running'")).count
    asleep = (await client.count_workflows(f"{on_queue} AND JourneyStage = 'scheduled'")).count
    ids = [execution.id async for execution in client.list_workflows(on_queue, limit=sleeping)]
    sample = random.Random(14).sample(ids, min(RESTART_SAMPLE, len(ids)))
    q0 = time.monotonic()
    stages = await asyncio.gather(
        *(client.get_workflow_handle(wid).query(RenewalJourney.status) for wid in sample)
    )
    query_seconds = time.monotonic() - q0
    answered = sum(1 for status in stages if status.stage == Stage.SCHEDULED)
    return {
        "sleeping_before": sleeping,
        "running_after": running,
        "asleep_after": asleep,
        "listed_after": len(ids),
        "sample_queried": len(sample),
        "sample_scheduled": answered,
        "survived": running == asleep == len(ids) == sleeping and answered == len(sample),
        "sample_query_s": round(query_seconds, 1),
    }


def _alive(pid: int) -> bool:
    """Whether `pid` still runs (a zombie, exited but not yet reaped, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
