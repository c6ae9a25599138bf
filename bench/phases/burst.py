"""Phase 2, our burst: import `n` policies, `renewals start` their journeys, and measure every send of
the touchpoint they all wake for, as the fake providers' log records it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench.bare import SENDS
from bench.infra import (
    CpuMeter,
    Gateway,
    RssSampler,
    Server,
    app_database,
    memory_kib,
    process,
    pydantic_client,
    stored_payloads,
    wait_for_text,
    wait_until,
)
from bench.phases.common import percentiles, worker_env
from renewals.db.database import Database
from renewals.sendwindow import SendWindow

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
# Journeys' first workflow tasks the in-memory dev server completes a second while intake runs (measured
# 55–66/s on 2 cores): the lead gives N journeys N / this to fall asleep before their touchpoint, unless
# the run measured its own rate (`first_tasks_per_s`, from an earlier burst: the machine's speed varies
# by 2× from day to day, and a journey asleep after its moment measures intake, not the drain).
FIRST_TASKS_PER_S = 50
FIRST_TASKS_MARGIN = 0.7  # the share of a measured first-task rate the lead counts on
ZONES = ("Europe/Moscow", "Asia/Vladivostok", "Europe/Kaliningrad", "Asia/Yekaterinburg", "Asia/Kamchatka")


def lead_seconds(n: int, import_seconds: float, first_tasks_per_s: float | None = None) -> float:
    """From intake to the touchpoint's due moment. Every journey must be asleep (its first workflow
    task run) before its touchpoint is due, as a real portfolio's journeys are, started weeks ahead:
    10 s, five times the import, and N at FIRST_TASKS_MARGIN of the first-task rate an earlier burst
    measured (FIRST_TASKS_PER_S when none did)."""
    rate = FIRST_TASKS_MARGIN * first_tasks_per_s if first_tasks_per_s else FIRST_TASKS_PER_S
    return 10 + 5 * import_seconds + n / rate


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


def policy_number(series: int, i: int) -> str:
    return f"7100K/{series:03d}/{i:06d}/26"


def policy_rows(n: int, expires_on: date, tz: str, series: int) -> list[dict[str, Any]]:
    """KASKO renewal-centre policies numbered like the insurer's (XXXXX/XXX/XXXXXX/XX)."""
    return [
        {
            "kind": "policy",
            "number": policy_number(series, i),
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


async def measure(
    server: Server,
    n: int,
    workdir: Path,
    gateway: Gateway,
    profile: bool,
    lead: float | None,
    variants: str = "",
    workers: int = 1,
    spread_minutes: int = 0,
    app_db: str = "sqlite",
    first_tasks_per_s: float | None = None,
) -> dict[str, Any]:
    """Our burst. With `spread_minutes` the window spreads the morning's sends (each journey at its own
    offset, `SendWindow.spread_offset`), and each send's lateness is against its own journey's moment.
    `app_db`: the application database, a SQLite file or a fresh database on the local PostgreSQL."""
    from renewals.intake.importer import import_file
    from renewals.intake.journey_sync import start_due_journeys
    from renewals.models import journey_id

    # The `nocodec` worker variant reads plain payloads: the journeys must be started without the codec too.
    client = pydantic_client(server) if "nocodec" in variants.split(",") else server.client
    queue = f"ours-{uuid.uuid4().hex[:8]}"
    series = int(queue[-3:], 16) % 1000
    log = workdir / f"{queue}-worker.log"
    tz = pick_zone(n / 60 + 30 + spread_minutes)
    today = datetime.now(tz).date()
    source = workdir / f"{queue}.jsonl"
    rows = [CENTRE, AGENT, *policy_rows(n, today + timedelta(days=30), str(tz), series)]
    source.write_text("\n".join(json.dumps(row, ensure_ascii=False) for row in rows) + "\n", encoding="utf-8")

    command = (
        [sys.executable, "-m", "bench.variant_worker", variants]
        if variants
        else [sys.executable, "worker.py"]
    )
    async with app_database(app_db, workdir, queue) as db_url, contextlib.AsyncExitStack() as stack:
        env = worker_env(server, queue, db_url, gateway)
        extra = []
        for index in range(2, workers + 1):  # more worker processes on the same queues (`--workers`)
            extra_log = workdir / f"{queue}-worker{index}.log"
            own_ports = worker_env(server, queue, db_url, gateway)  # its own metrics and health ports
            extra.append(stack.enter_context(process(command, extra_log, own_ports)))
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
                lead = lead_seconds(n, import_seconds, first_tasks_per_s)
            due_local = (datetime.now(tz) + timedelta(seconds=lead)).replace(microsecond=0)
            window = _window_opening_at(due_local.time(), spread_minutes)
            due = due_local.timestamp()
            t1 = time.monotonic()
            summary = await start_due_journeys(client, db, today, 30, queue, window)
            start_seconds = time.monotonic() - t1
        finally:
            await db.dispose()
        started = summary.counts.get("started", 0)
        overran = time.time() > due
        tail = LogTail(gateway.log)  # the gateway is this run's own: every line is one of ours
        spy = None
        # Asleep = its first workflow task has run (visibility lags a little: a lower bound). Counted
        # each second until all are, which gives this machine's first-task rate for a later lead.
        asleep = f"TaskQueue = '{queue}' AND JourneyStage = 'scheduled'"
        all_asleep_s = None
        while time.time() < due - 2:
            if (await server.client.count_workflows(asleep)).count >= started:
                all_asleep_s = time.monotonic() - t1
                break
            await asyncio.sleep(max(0.0, min(1.0, due - 2 - time.time())))
        asleep_at_due = (await server.client.count_workflows(asleep)).count
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
        asleep_rss_mib = memory_kib(worker.pid)["VmRSS"] / 1024
        with RssSampler(worker.pid) as rss:
            await wait_until(
                lambda: tail.poll() >= SENDS * n, 900 + 60 * spread_minutes, "every message", every=0.25
            )
        cpu = meter.stop()
        await asyncio.sleep(1)
        tail.poll()
        if spy is not None:
            spy.wait(timeout=600)
        messages = tail.lines
        try:  # evidence of the converter used; never worth losing the burst's figures over
            stored = await stored_payloads(
                server, journey_id(policy_number(series, 0), today + timedelta(days=30))
            )
        except Exception as error:
            stored = {"input_encoding": None, "error": repr(error)[:300]}
        breakdown = await _outbox_breakdown(db_url, due)
    offsets = {
        i: window.spread_offset(journey_id(policy_number(series, i), today + timedelta(days=30)))
        for i in range(n)
    }
    lateness = [
        datetime.fromisoformat(m["accepted_at"]).timestamp() - due - offsets[_policy_index(m)].total_seconds()
        for m in messages
    ]
    worker_log = log.read_text(errors="replace")
    per_journey: dict[str, float] = {}
    channels = Counter(m["channel"] for m in messages)
    by_key = Counter((m["channel"], m["key"]) for m in messages)
    for m, late in zip(messages, lateness, strict=True):
        per_journey[m["recipient"] if m["channel"] == "sms" else ""] = late  # the SMS goes last
    per_journey.pop("", None)
    drain = max(lateness)
    return {
        "n": n,
        "spread_minutes": spread_minutes,
        "worker_variants": variants or None,
        "workflow_input_encoding": stored["input_encoding"],
        "one_journey_history": stored,
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
        "asleep_at_due": asleep_at_due,
        "lead_seconds": round(lead, 1),
        "lead_first_tasks_per_s": round(first_tasks_per_s, 1) if first_tasks_per_s else None,
        # From `renewals start`'s first call to the last journey asleep: None if not before the moment.
        "all_asleep_after_start_s": round(all_asleep_s, 1) if all_asleep_s else None,
        "first_tasks_per_s": round(started / all_asleep_s, 1) if all_asleep_s else None,
        "drain_seconds": round(drain, 2),
        "first_send_after_due_s": round(min(lateness), 3),
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
        "app_db": app_db,
        "worker_rss_all_asleep_mib": round(asleep_rss_mib, 1),
        "worker_rss_peak_during_drain_mib": round(rss.peak_kib / 1024, 1),
        "correctness": {
            "messages": len(messages),
            "expected": SENDS * n,
            "by_channel": dict(channels),
            "max_per_dedup_key": max(by_key.values()) if by_key else 0,
            "sms_recipients_match": {m["recipient"] for m in messages if m["channel"] == "sms"}
            == {f"7916{i:07d}" for i in range(n)},
            "exactly_once": len(messages) == SENDS * n
            and max(by_key.values()) == 1
            and all(channels[c] == n for c in ("sms", "email", "vk")),
        },
        "profile": str(workdir / f"{queue}-py-spy.txt") if profile else None,
    }


def _window_opening_at(opening: dtime, spread_minutes: int) -> SendWindow:
    """A send window that opens at `opening` every day (and closes just before midnight)."""
    last = dtime(23, 59, 59)
    return SendWindow(
        working_start=opening,
        working_end=last,
        non_working_start=opening,
        non_working_end=last,
        spread_minutes=spread_minutes,
    )


def _policy_index(message: dict[str, Any]) -> int:
    """Which of `policy_rows` a gateway line is for, from its recipient (phone, e-mail or VK id)."""
    recipient = str(message["recipient"])
    if message["channel"] == "sms":
        return int(recipient.lstrip("+")[-7:])
    if message["channel"] == "email":
        return int(recipient.split("@")[0].lstrip("c"))
    return int(recipient) - 10_000


async def _outbox_breakdown(db_url: str, due: float) -> dict[str, Any]:
    """From the outbox rows: when each send's activity claimed its row (relative to due: Temporal
    dispatch + the journey's earlier sends + waiting for an activity slot), and how long our activity
    took from claim to mark-sent (DB transactions, provider calls, the event loop's queue)."""
    from sqlalchemy import select

    from renewals.db.database import as_utc
    from renewals.db.tables import OutboxRow

    db = Database(db_url)
    try:
        async with db.engine.connect() as connection:
            rows = (
                await connection.execute(
                    select(OutboxRow.created_at, OutboxRow.updated_at).where(OutboxRow.status == "sent")
                )
            ).all()
    finally:
        await db.dispose()
    claimed = [(as_utc(c).timestamp(), as_utc(u).timestamp()) for c, u in rows]
    return {
        "claim_after_due": percentiles(c - due for c, _ in claimed),
        "claim_to_sent_in_activity": percentiles(u - c for c, u in claimed),
    }


def _py_spy(pid: int, out: Path, seconds: float) -> subprocess.Popen[bytes] | None:
    binary = Path(sys.executable).parent / "py-spy"
    if not binary.exists():
        print("py-spy not installed in the venv: no profile (pip install py-spy)", file=sys.stderr)
        return None
    command = [str(binary), "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "100"]
    command += ["--format", "raw", "--output", str(out), "--nonblocking", "--threads"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
