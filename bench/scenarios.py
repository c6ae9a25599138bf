"""The measured phases: bare baseline, our burst (intake → wake-up → sends), sleeping-journey
memory, and `renewals simulate`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from temporalio.client import Client

from bench.bare import SENDS, BareBurst
from bench.infra import (
    ROOT,
    CpuMeter,
    Gateway,
    RssSampler,
    Server,
    memory_kib,
    process,
    wait_for_text,
    wait_until,
)
from renewals.db.database import Database
from renewals.models import Agent, Policy, Product, RegionalCentre
from renewals.models import Client as PolicyClient
from renewals.sendwindow import SendWindow

START_CONCURRENCY = 100  # in-flight StartWorkflowExecution calls for the bare start rate
CENTRE = {"kind": "centre", "centre_id": "msk", "centre_name": "Москва", "centre_phone": "+74957770000"}
AGENT = {
    "kind": "agent",
    "agent_id": "A-1",
    "agent_name": "Петрова Анна",
    "agent_phone": "+79031112233",
    "rate_kasko": 0.5,
    "rate_osago": 0.5,
    "rate_ifl": 0.5,
}
# Zones tried in order: the first whose local time leaves the whole run inside one calendar day.
ZONES = ("Europe/Moscow", "Asia/Vladivostok", "Europe/Kaliningrad", "Asia/Yekaterinburg", "Asia/Kamchatka")


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


def pick_zone(minutes_needed: float) -> ZoneInfo:
    """A client time zone where now + `minutes_needed` is still the same local day (so day −30 stays
    today), with at least a minute's margin after local midnight."""
    for name in ZONES:
        tz = ZoneInfo(name)
        local = datetime.now(tz)
        end = local + timedelta(minutes=minutes_needed)
        if end.date() == local.date() and local.hour * 60 + local.minute >= 1:
            return tz
    raise RuntimeError("no zone keeps the run within one local day")


async def count(client: Client, query: str) -> int:
    return (await client.count_workflows(query)).count


# ---- 1. bare Temporal -----------------------------------------------------------------------------


async def baseline(server: Server, n: int, workdir: Path, parallel: bool = True) -> dict[str, Any]:
    client = server.client
    queue = f"bare-{uuid.uuid4().hex[:8]}"
    log = workdir / f"{queue}.log"
    command = [sys.executable, "-m", "bench.bare", "--address", server.address, "--queue", queue]
    with process(command, log) as worker:
        await wait_for_text(log, "bare worker ready", worker)
        await asyncio.sleep(1)
        lead = 10 + n / 100  # comfortably after the last start
        wake = time.time() + lead
        started = time.monotonic()
        await bounded(
            (
                lambda i=i: client.start_workflow(
                    BareBurst.run, args=[wake, SENDS, parallel], id=f"{queue}-{i:06d}", task_queue=queue
                )
                for i in range(n)
            ),
            START_CONCURRENCY,
        )
        start_seconds = time.monotonic() - started
        if time.time() >= wake:
            raise RuntimeError("bare starts overran the wake-up instant; lower N or raise the lead")
        await asyncio.sleep(max(0.0, wake - time.time()))
        meter = CpuMeter(
            {"worker": worker.pid, "server": server.pid or 0, "bench": os.getpid()}, thread_pid=worker.pid
        )
        meter.start()
        await wait_until(
            lambda: _all_closed(client, queue, n), 900, "every bare workflow to complete", every=0.5
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


async def _all_closed(client: Client, queue: str, n: int) -> bool:
    return await count(client, f"TaskQueue = '{queue}' AND ExecutionStatus != 'Running'") >= n


# ---- 2. ours ------------------------------------------------------------------------------------


def worker_env(server: Server, queue: str, db_url: str, gateway: Gateway | None) -> dict[str, str]:
    env = {
        **os.environ,
        "RENEWALS_TEMPORAL_ADDRESS": server.address,
        "RENEWALS_TASK_QUEUE": queue,
        "RENEWALS_DATABASE_URL": db_url,
        "RENEWALS_CHANNELS": "gateway" if gateway else "database",
        # The bench measures our code and Temporal, not VK's contractual 20 requests/s (see report).
        "RENEWALS_VK_PER_SECOND": "100000",
    }
    if gateway:
        env |= {"RENEWALS_GATEWAY_URL": gateway.url, "RENEWALS_GATEWAY_SMTP_PORT": str(gateway.smtp_port)}
    return env


def policy_rows(n: int, expires_on: date, tz: str, series: int) -> list[dict[str, Any]]:
    """KASKO renewal-centre policies numbered like the insurer's (XXXXX/XXX/XXXXXX/XX)."""
    return [
        {
            "kind": "policy",
            "number": f"7100K/{series:03d}/{i:06d}/26",
            "product": "KASKO",
            "expires_on": expires_on.isoformat(),
            "renewal_centre": True,
            "last_name": "Иванов",
            "first_name": "Иван",
            "patronymic": "Петрович",
            "phone": f"+7916{i:07d}",
            "email": f"c{i}@example.org",
            "vk_id": str(10_000 + i),
            "timezone": tz,
            "agent_id": "A-1",
            "centre_id": "msk",
        }
        for i in range(n)
    ]


class LogTail:
    """Reads the gateway's JSONL log incrementally."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: list[dict[str, Any]] = []
        self._offset = 0
        self._partial = b""

    def poll(self) -> int:
        if self.path.exists():
            with self.path.open("rb") as file:
                file.seek(self._offset)
                chunk = file.read()
            self._offset += len(chunk)
            data = self._partial + chunk
            *complete, self._partial = data.split(b"\n")
            self.lines.extend(json.loads(line) for line in complete if line.strip())
        return len(self.lines)


async def ours(
    server: Server,
    n: int,
    workdir: Path,
    gateway: Gateway,
    profile: bool,
    lead: float | None,
    variants: str = "",
    workers: int = 1,
    spread_minutes: int = 0,
) -> dict[str, Any]:
    """Our burst. With `spread_minutes` the window spreads the morning's sends (each journey at its own
    offset, `SendWindow.spread_offset`), and each send's lateness is against its own journey's moment."""
    from renewals.intake.importer import import_file
    from renewals.intake.journeys import start_due_journeys
    from renewals.models import journey_id

    client = server.client
    queue = f"ours-{uuid.uuid4().hex[:8]}"
    db_url = f"sqlite+aiosqlite:///{workdir}/{queue}.db"
    log = workdir / f"{queue}-worker.log"
    tz = pick_zone(n / 60 + 30)
    today = datetime.now(tz).date()
    source = workdir / f"{queue}.jsonl"
    rows = [CENTRE, AGENT, *policy_rows(n, today + timedelta(days=30), str(tz), int(queue[-3:], 16) % 1000)]
    source.write_text("\n".join(json.dumps(row, ensure_ascii=False) for row in rows) + "\n", encoding="utf-8")

    command = (
        [sys.executable, "-m", "bench.variant_worker", variants]
        if variants
        else [sys.executable, "worker.py"]
    )
    with contextlib.ExitStack() as stack:
        env = worker_env(server, queue, db_url, gateway)
        extra = []
        for index in range(2, workers + 1):  # more worker processes on the same queues (`--workers`)
            extra_log = workdir / f"{queue}-worker{index}.log"
            extra.append(stack.enter_context(process(command, extra_log, env)))
        worker = stack.enter_context(process(command, log, env))
        await wait_for_text(log, "worker serving", worker, 120)
        for index, other in enumerate(extra, start=2):
            await wait_for_text(workdir / f"{queue}-worker{index}.log", "worker serving", other, 120)
        db = Database(db_url)
        try:
            t0 = time.monotonic()
            report = await import_file(db, source, today)
            import_seconds = time.monotonic() - t0
            if report.rejected_rows:
                raise RuntimeError(f"intake rejected {report.rejected_rows} rows: {report.rejections[:3]}")
            if lead is None:
                # Every journey must be asleep before its touchpoint is due: `renewals start` runs at
                # > 57 starts/s even on the SQLite server here (1,000: 17.5 s of a 21 s lead).
                lead = 10 + 5 * import_seconds + n / 100
            due_local = (datetime.now(tz) + timedelta(seconds=lead)).replace(microsecond=0)
            opening = due_local.time()
            window = SendWindow(
                working_start=opening,
                working_end=dtime(23, 59, 59),
                non_working_start=opening,
                non_working_end=dtime(23, 59, 59),
                spread_minutes=spread_minutes,
            )
            due = due_local.timestamp()
            t1 = time.monotonic()
            summary = await start_due_journeys(client, db, today, 30, queue, window)
            start_seconds = time.monotonic() - t1
        finally:
            await db.dispose()
        started = summary.counts.get("started", 0)
        overran = time.time() > due
        tail = LogTail(gateway.log)  # the gateway is this run's own: every line is one of ours
        before = 0
        spy = None
        await asyncio.sleep(max(0.0, due - time.time() - 0.2))
        meter = CpuMeter(
            {
                "worker": worker.pid,
                **{f"worker{i}": p.pid for i, p in enumerate(extra, start=2)},
                "gateway": gateway.process.pid,
                "server": server.pid or 0,
                "bench": os.getpid(),
            },
            thread_pid=worker.pid,
        )
        if profile:
            spy = _py_spy(worker.pid, workdir / f"{queue}-py-spy.txt", seconds=max(10, n * SENDS / 40))
        meter.start()
        with RssSampler(worker.pid) as rss:
            await wait_until(
                lambda: tail.poll() - before >= SENDS * n,
                900 + 60 * spread_minutes,
                "every message",
                every=0.25,
            )
        cpu = meter.stop()
        await asyncio.sleep(1)
        tail.poll()
        if spy is not None:
            spy.wait(timeout=600)
        messages = tail.lines[before:]
    series = int(queue[-3:], 16) % 1000
    offsets = {
        i: window.spread_offset(journey_id(f"7100K/{series:03d}/{i:06d}/26", today + timedelta(days=30)))
        for i in range(n)
    }
    lateness = [
        datetime.fromisoformat(m["accepted_at"]).timestamp() - due - offsets[_policy_index(m)].total_seconds()
        for m in messages
    ]
    breakdown = _outbox_breakdown(workdir / f"{queue}.db", due)
    worker_log = log.read_text(errors="replace")
    per_journey: dict[str, float] = {}
    channels = Counter(m["channel"] for m in messages)
    by_key = Counter((m["channel"], m["key"]) for m in messages)
    for m, late in zip(messages, lateness, strict=True):
        per_journey[m["recipient"] if m["channel"] == "sms" else ""] = late  # the SMS goes last
    per_journey.pop("", None)
    expected_sms = {f"7916{i:07d}" for i in range(n)}
    drain = max(lateness)
    first = min(lateness)
    return {
        "n": n,
        "spread_minutes": spread_minutes,
        "worker_variants": variants or None,
        "worker_processes": workers,
        "sends_per_journey": SENDS,
        "client_zone": str(tz),
        "import_seconds": round(import_seconds, 2),
        "import_rate_per_s": round(n / import_seconds, 1),
        "start_seconds": round(start_seconds, 2),
        "start_rate_per_s": round(started / start_seconds, 1),
        "intake_rate_per_s": round(n / (import_seconds + start_seconds), 1),
        "start_outcomes": dict(summary.counts),
        "intake_overran_due": overran,
        "lead_seconds": round(lead, 1),
        "drain_seconds": round(drain, 2),
        "first_send_after_due_s": round(first, 3),
        "drain_journeys_per_s": round(n / drain, 1),
        "drain_messages_per_s": round(len(messages) / drain, 1),
        "send_lateness_s": percentiles(lateness),
        "journey_completion_lateness_s": percentiles(per_journey.values()),
        "lateness_by_channel_s": {
            ch: percentiles(late for m, late in zip(messages, lateness, strict=True) if m["channel"] == ch)
            for ch in sorted(channels)
        },
        "where_the_time_goes_s": breakdown,
        "worker_log": {
            "database_is_locked": worker_log.count("database is locked"),
            "activities_failed_and_retried": worker_log.count("Completing activity as failed"),
        },
        "due_at": datetime.fromtimestamp(due, UTC).isoformat(),
        "cpu_during_drain": cpu,
        "worker_rss_peak_during_drain_mib": round(rss.peak_kib / 1024, 1),
        "correctness": {
            "messages": len(messages),
            "expected": SENDS * n,
            "by_channel": dict(channels),
            "max_per_dedup_key": max(by_key.values()) if by_key else 0,
            "sms_recipients_match": {m["recipient"] for m in messages if m["channel"] == "sms"}
            == expected_sms,
            "exactly_once": len(messages) == SENDS * n
            and max(by_key.values()) == 1
            and all(channels[c] == n for c in ("sms", "email", "vk")),
        },
        "profile": str(workdir / f"{queue}-py-spy.txt") if profile else None,
    }


def _policy_index(message: dict[str, Any]) -> int:
    """Which of `policy_rows` a gateway line is for, from its recipient (phone, e-mail or VK id)."""
    recipient = str(message["recipient"])
    if message["channel"] == "sms":
        return int(recipient.lstrip("+")[-7:])
    if message["channel"] == "email":
        return int(recipient.split("@")[0].lstrip("c"))
    return int(recipient) - 10_000


def _outbox_breakdown(path: Path, due: float) -> dict[str, Any]:
    """From the outbox rows: when each send's activity claimed its row (relative to due: Temporal
    dispatch + the journey's earlier sends + waiting for an activity slot), and how long our activity
    took from claim to mark-sent (DB transactions, provider calls, the event loop's queue)."""
    import sqlite3

    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT created_at, updated_at FROM outbox WHERE status = 'sent'").fetchall()

    def ts(value: str) -> float:
        return datetime.fromisoformat(value).replace(tzinfo=UTC).timestamp()

    return {
        "claim_after_due": percentiles(ts(c) - due for c, _ in rows),
        "claim_to_sent_in_activity": percentiles(ts(u) - ts(c) for c, u in rows),
    }


def _py_spy(pid: int, out: Path, seconds: float) -> subprocess.Popen[bytes] | None:
    binary = Path(sys.executable).parent / "py-spy"
    if not binary.exists():
        print("py-spy not installed in the venv: no profile (pip install py-spy)", file=sys.stderr)
        return None
    command = [
        str(binary),
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(int(seconds)),
        "--rate",
        "100",
        "--format",
        "raw",
        "--output",
        str(out),
        "--nonblocking",
        "--threads",
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# ---- 3. memory ----------------------------------------------------------------------------------


async def memory(server: Server, steps: list[int], workdir: Path) -> dict[str, Any]:
    """Worker RSS while 1k, 10k, 100k … journeys sleep (their first touchpoint is 10 days away)."""
    from starter.journeys import start_journey

    client = server.client
    queue = f"mem-{uuid.uuid4().hex[:8]}"
    db_url = f"sqlite+aiosqlite:///{workdir}/{queue}.db"
    log = workdir / f"{queue}-worker.log"
    tz = ZoneInfo("Europe/Moscow")
    expires_on = datetime.now(tz).date() + timedelta(days=40)
    centre = RegionalCentre(id="msk", name="Москва", phone="+74957770000")
    agent = Agent(id="A-1", name="Петрова Анна", phone="+79031112233")
    window = SendWindow()
    results: list[dict[str, Any]] = []
    with process([sys.executable, "worker.py"], log, worker_env(server, queue, db_url, None)) as worker:
        await wait_for_text(log, "worker serving", worker, 120)
        await asyncio.sleep(2)
        idle = memory_kib(worker.pid)["VmRSS"]
        done = 0
        for target in steps:
            policies = [
                Policy(
                    number=f"7200K/001/{i:06d}/26",
                    product=Product.KASKO,
                    expires_on=expires_on,
                    renewal_centre=True,
                    client=PolicyClient(
                        last_name="Иванов",
                        first_name="Иван",
                        phone=f"+7916{i:07d}",
                        email=f"m{i}@example.org",
                        vk_id=str(10_000 + i),
                    ),
                    agent=agent,
                    regional_centre=centre,
                )
                for i in range(done, target)
            ]
            with RssSampler(worker.pid, interval=0.5) as rss:
                t0 = time.monotonic()
                await bounded(
                    (lambda p=p: start_journey(client, p, queue, window) for p in policies), START_CONCURRENCY
                )
                start_seconds = time.monotonic() - t0
                query = f"TaskQueue = '{queue}' AND JourneyStage = 'scheduled'"
                await wait_until(
                    lambda t=target, q=query: _at_least(client, q, t), 3600, f"{target} sleeping", every=1
                )
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
            print(
                f"  memory: {target} sleeping, worker RSS {now / 1024:.0f} MiB "
                f"(peak {rss.peak_kib / 1024:.0f}), took {settled_seconds:.0f} s",
                flush=True,
            )
        peak = memory_kib(worker.pid)["VmHWM"]
    rss_values = [r["rss_mib"] for r in results]
    return {
        "idle_rss_mib": round(idle / 1024, 1),
        "steps": results,
        "worker_peak_rss_mib": round(peak / 1024, 1),
        "flat_ratio_last_to_first": round(rss_values[-1] / rss_values[0], 2) if rss_values else None,
    }


async def _at_least(client: Client, query: str, target: int) -> bool:
    return await count(client, query) >= target


# ---- 4. simulate --------------------------------------------------------------------------------


def simulate(workdir: Path, scenarios: int) -> dict[str, Any]:
    """`renewals simulate` wall time: one 45-day journey, and `scenarios` of them in one file."""
    base = json.loads((ROOT / "examples" / "scenarios.json").read_text(encoding="utf-8"))["scenarios"]
    template = next(s for s in base if s["policy"].get("renewal_centre")) if base else None
    if template is None:
        return {}
    # Intake "now" must not be in the past for the simulator: move every scenario to tomorrow+.
    results: dict[str, Any] = {}
    for size in (1, scenarios):
        items = []
        for i in range(size):
            s = json.loads(json.dumps(template))
            s["id"] = f"bench-{i}"
            s["policy"]["number"] = f"SIM-{i:06d}"
            items.append(s)
        path = workdir / f"scenarios-{size}.json"
        path.write_text(json.dumps({"scenarios": items}, ensure_ascii=False), encoding="utf-8")
        t0 = time.monotonic()
        run = subprocess.run(
            [str(Path(sys.executable).parent / "renewals"), "simulate", str(path)],
            cwd=ROOT,
            capture_output=True,
            check=False,
        )
        seconds = time.monotonic() - t0
        ok = run.returncode == 0 and len(json.loads(run.stdout or b"{}").get("results", [])) == size
        results[f"scenarios_{size}"] = {
            "seconds": round(seconds, 2),
            "ok": ok,
            "stderr": run.stderr.decode()[-300:] if not ok else "",
        }
    one = results["scenarios_1"]["seconds"]
    many = results[f"scenarios_{scenarios}"]["seconds"]
    results["per_journey_s"] = round((many - one) / max(1, scenarios - 1), 3)
    results["startup_s"] = round(one - results["per_journey_s"], 2)
    results["projected_1000_s"] = round(results["startup_s"] + 1000 * results["per_journey_s"], 1)
    return results


def summarise(values: list[float]) -> float:
    return statistics.fmean(values) if values else 0.0


_ = UTC
