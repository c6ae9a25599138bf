"""Phase 1, bare Temporal: `n` minimal workflows wake at one instant and run `SENDS` activities each."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from functools import partial
from pathlib import Path
from typing import Any

from bench.bare import SENDS, BareBurst
from bench.infra import CpuMeter, Server, memory_kib, process, wait_for_text, wait_until
from bench.phases.common import START_CONCURRENCY, at_least, bounded, percentiles


async def measure(server: Server, n: int, workdir: Path, parallel: bool = True) -> dict[str, Any]:
    client = server.plain  # the bare worker: Temporal's default converter, no codec
    queue = f"bare-{uuid.uuid4().hex[:8]}"
    log = workdir / f"{queue}.log"
    command = [sys.executable, "-m", "bench.bare", "--address", server.address, "--queue", queue]
    with process(command, log) as worker:
        await wait_for_text(log, "bare worker ready", worker)
        await asyncio.sleep(1)
        lead = 10 + n / 100  # comfortably after the last start
        wake = time.time() + lead
        started = time.monotonic()
        start = partial(client.start_workflow, BareBurst.run, args=[wake, SENDS, parallel], task_queue=queue)
        await bounded((partial(start, id=f"{queue}-{i:06d}") for i in range(n)), START_CONCURRENCY)
        start_seconds = time.monotonic() - started
        if time.time() >= wake:
            raise RuntimeError("bare starts overran the wake-up instant; lower N or raise the lead")
        await asyncio.sleep(max(0.0, wake - time.time()))
        meter = CpuMeter(
            {"worker": worker.pid, "server": server.pid or 0, "bench": os.getpid()}, thread_pid=worker.pid
        )
        meter.start()
        closed = f"TaskQueue = '{queue}' AND ExecutionStatus != 'Running'"
        await wait_until(
            lambda: at_least(client, closed, n), 900, "every bare workflow to complete", every=0.5
        )
        cpu = meter.stop()
        closes = [
            execution.close_time.timestamp()
            async for execution in client.list_workflows(f"TaskQueue = '{queue}'")
            if execution.close_time is not None
        ]
    lateness = [close - wake for close in closes]
    drain_seconds = max(lateness)
    return {
        "n": n,
        "activities_per_workflow": SENDS,
        "activities_in_parallel": parallel,
        "start_seconds": round(start_seconds, 2),
        "start_rate_per_s": round(n / start_seconds, 1),
        "drain_seconds": round(drain_seconds, 2),
        "drain_workflows_per_s": round(n / drain_seconds, 1),
        "drain_activities_per_s": round(SENDS * n / drain_seconds, 1),
        "completion_lateness_s": percentiles(lateness),
        "cpu_during_drain": cpu,
        "worker_rss_mib": round(memory_kib(worker.pid)["VmHWM"] / 1024, 1) if worker.poll() is None else None,
    }
