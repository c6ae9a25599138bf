"""The moving parts of a benchmark run: dev server, gateway and worker processes, /proc readings."""

from __future__ import annotations

import asyncio
import os
import platform
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from renewals.encryption import Keyring, data_converter
from renewals.temporal.runtime import cli_runtime
from renewals.temporal.setup import ALL_KEYS
from starter.binaries import find_binary
from starter.stack import SQLITE_PRAGMAS

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")


POSTGRES_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


@asynccontextmanager
async def app_database(kind: str, workdir: Path, name: str) -> AsyncIterator[str]:
    """The application database's URL for one burst: a SQLite file in `workdir`, or (`postgresql`) a
    database of its own on the local PostgreSQL (`BENCH_POSTGRES_URL` names the server to create it
    on), dropped afterwards. The worker migrates it as it would in production."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{workdir}/{name}.db"
        return
    if kind != "postgresql":
        raise ValueError(f"--app-db: {kind!r} is neither sqlite nor postgresql")
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    database = f"bench_{name.replace('-', '_')}"
    admin = create_async_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'CREATE DATABASE "{database}"'))
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{database}"
    finally:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        await admin.dispose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---- /proc ------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a whole process (all threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds per thread name (Python's main thread is the process name; Rust core threads
    are tokio-runtime-w…): tells GIL-bound Python work from the SDK core's own work."""
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            raw = (task / "stat").read_text()
        except OSError:
            continue
        name = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw.rsplit(")", 1)[1].split()
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / TICKS
    return out


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak) in KiB, from /proc/<pid>/status."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


def children_named(parent: int, word: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and word in cmdline:
            found.append(int(entry.name))
    return found


@dataclass
class CpuMeter:
    """CPU used by named processes between `start()` and `stop()`, as % of one core."""

    pids: dict[str, int]
    _t0: float = 0.0
    _c0: dict[str, float] = field(default_factory=dict)
    _threads0: dict[str, float] = field(default_factory=dict)
    thread_pid: int | None = None

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._c0 = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self._c0["machine"] = _machine_busy()
        if self.thread_pid:
            self._threads0 = thread_cpu(self.thread_pid)

    def stop(self) -> dict[str, Any]:
        elapsed = time.monotonic() - self._t0
        result: dict[str, Any] = {"seconds": round(elapsed, 2)}
        for name, pid in self.pids.items():
            try:
                used = cpu_seconds(pid) - self._c0[name]
            except OSError:
                continue
            result[f"{name}_cpu_pct"] = round(100 * used / elapsed, 1)
        result["machine_busy_pct_of_all_cores"] = round(
            100 * (_machine_busy() - self._c0["machine"]) / (elapsed * (os.cpu_count() or 1)), 1
        )
        if self.thread_pid:
            now = thread_cpu(self.thread_pid)
            groups: dict[str, float] = {}
            for name, used in now.items():
                delta = used - self._threads0.get(name, 0.0)
                group = "python main thread" if name.startswith("python") else name.rstrip("0123456789-")
                groups[group] = groups.get(group, 0.0) + delta
            result["worker_threads_cpu_pct"] = {
                name: round(100 * used / elapsed, 1)
                for name, used in sorted(groups.items(), key=lambda kv: -kv[1])
                if used > 0.005 * elapsed
            }
        return result


def _machine_busy() -> float:
    """Busy CPU seconds of the whole machine, all cores (user+nice+system+irq+softirq+steal)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (fields[0] + fields[1] + fields[2] + fields[5] + fields[6] + fields[7]) / TICKS


class RssSampler:
    """Samples a process's RSS every `interval` s in the background; `peak_kib` = the largest seen
    (VmHWM covers the process's whole life; the sampler covers only the phase measured)."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_kib = 0
        self._task: asyncio.Task[None] | None = None

    def reset(self) -> None:
        self.peak_kib = memory_kib(self.pid).get("VmRSS", 0)

    async def _run(self) -> None:
        while True:
            try:
                self.peak_kib = max(self.peak_kib, memory_kib(self.pid).get("VmRSS", 0))
            except OSError:
                return
            await asyncio.sleep(self.interval)

    def __enter__(self) -> RssSampler:
        self.reset()
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task:
            self._task.cancel()


# ---- processes --------------------------------------------------------------------------------


@dataclass
class Server:
    env: WorkflowEnvironment
    client: Client  # encrypted like production (`keyring`: passed to our workers by `worker_env`)
    address: str
    pid: int | None
    mode: str
    keyring: Keyring
    plain: Client  # the default converter, for the bare-Temporal baseline
    db_file: Path | None = None  # the SQLite file of a persistent ("sqlite") server: what a restart reopens


@asynccontextmanager
async def dev_server(
    mode: str,
    workdir: Path,
    db_file: Path | None = None,
    port: int | None = None,
    keyring: Keyring | None = None,
) -> AsyncIterator[Server]:
    """`mode`: "memory" (the dev server's default) or "sqlite" (`--db-filename`, on disk: `db_file`,
    default a new file in `workdir`). A restart is a second `dev_server("sqlite", …)` on the first
    one's file, port and keyring: the workers' clients reconnect to the same address, and the
    journeys' payloads stay readable."""
    db_path = (db_file or workdir / f"temporal-{time.time_ns()}.db") if mode == "sqlite" else None
    db_name = str(db_path) if db_path else None
    keyring = keyring or Keyring.generate("bench")
    env = await WorkflowEnvironment.start_local(
        port=port,
        dev_server_existing_path=find_binary("temporal"),
        dev_server_database_filename=db_name,
        search_attributes=list(ALL_KEYS),
        data_converter=data_converter(keyring),
        runtime=cli_runtime(),
        ui=False,
        dev_server_log_level="error",
        dev_server_extra_args=list(SQLITE_PRAGMAS) if db_name else [],
    )
    try:
        address = env.client.service_client.config.target_host
        bound = address.rsplit(":", 1)[1]
        pids = [p for p in children_named(os.getpid(), "start-dev") if bound in _cmdline(p)]
        plain = Client(env.client.service_client, namespace=env.client.namespace)
        yield Server(env, env.client, address, pids[0] if pids else None, mode, keyring, plain, db_path)
    finally:
        await env.shutdown()


def pydantic_client(server: Server) -> Client:
    """A client on `server` with our converter but no payload codec: what the bench starts journeys
    with for the `nocodec` worker variant (the codec-cost comparison)."""
    return Client(
        server.env.client.service_client,
        namespace=server.env.client.namespace,
        data_converter=data_converter(None),
    )


async def stored_payloads(server: Server, workflow_id: str) -> dict[str, Any]:
    """What Temporal stores for one workflow: its input's `encoding` (`binary/encrypted` with the codec,
    `json/plain` without: proof of which converter a run really used), and every payload in its
    history (count, encrypted count, data bytes)."""
    history = await server.plain.get_workflow_handle(workflow_id).fetch_history()
    found: list[tuple[str, Payload]] = []
    for event in history.events:
        _collect_payloads(event, found, "")
    clear = Counter(path for path, p in found if p.metadata.get("encoding") != b"binary/encrypted")
    started = history.events[0].workflow_execution_started_event_attributes.input.payloads
    return {
        "input_encoding": started[0].metadata.get("encoding", b"").decode() if started else None,
        "history_events": len(history.events),
        "payloads": len(found),
        "encrypted_payloads": len(found) - sum(clear.values()),
        "payload_bytes": sum(len(p.data) for _, p in found),
        "unencrypted_by_field": dict(clear),
    }


def _collect_payloads(message: Message, found: list[tuple[str, Payload]], path: str) -> None:
    for descriptor, value in message.ListFields():
        where = f"{path}.{descriptor.name}" if path else descriptor.name
        kind = descriptor.message_type
        if kind is None:
            continue
        if kind.GetOptions().map_entry:  # map<string, Message>: look at the values
            kind = kind.fields_by_name["value"].message_type
            if kind is None:
                continue
            items = list(value.values())
        else:
            items = [value] if isinstance(value, Message) else list(value)
        for item in items:
            if kind.full_name == Payload.DESCRIPTOR.full_name:
                found.append((where, item))
            else:
                _collect_payloads(item, found, where)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@dataclass
class Gateway:
    url: str
    smtp_port: int
    log: Path
    process: subprocess.Popen[bytes]


@contextmanager
def gateway(workdir: Path) -> Iterator[Gateway]:
    port, smtp_port, log = free_port(), free_port(), workdir / f"gateway-{time.time_ns()}.jsonl"
    command = [
        sys.executable,
        "-m",
        "fake_providers",
        "--port",
        str(port),
        "--smtp-port",
        str(smtp_port),
        "--log",
        str(log),
    ]
    with (workdir / "gateway.out").open("ab") as out:
        process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=out)
    try:
        _wait_port(port, process)
        _wait_port(smtp_port, process)
        yield Gateway(f"http://127.0.0.1:{port}", smtp_port, log, process)
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_port(port: int, process: subprocess.Popen[bytes], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening on {port}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listening on {port} after {seconds} s")


@contextmanager
def process(
    command: Sequence[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        proc = subprocess.Popen(list(command), cwd=ROOT, env=env, stdout=out, stderr=out)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def wait_for_text(path: Path, text: str, proc: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited ({proc.returncode}); see {path}")
        if path.exists() and text in path.read_text(errors="replace"):
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{text!r} not in {path} after {seconds} s")


async def wait_until(condition: Callable[[], Any], seconds: float, what: str, every: float = 0.2) -> float:
    """Poll until `condition()` (sync or async) is true; the monotonic time it became true."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {seconds:.0f} s waiting for {what}")
        await asyncio.sleep(every)


# ---- facts --------------------------------------------------------------------------------------


def machine_facts() -> dict[str, Any]:
    meminfo = Path("/proc/meminfo").read_text().splitlines()[0].split()
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    temporal_version = subprocess.run(
        [find_binary("temporal"), "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "-"

    return {
        "cores": os.cpu_count(),
        "cpu": cpu_model,
        "memory_gib": round(int(meminfo[1]) / 1024 / 1024, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "temporalio": version("temporalio"),
        "temporal_cli": temporal_version,
        "sqlalchemy": version("sqlalchemy"),
        "git_commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip(),
        "uncommitted_changes": subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.splitlines(),
    }
