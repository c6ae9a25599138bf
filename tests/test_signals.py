"""The long-running processes stopped the way people stop them: Ctrl-C in a terminal or systemd's
`KillSignal=SIGINT` (SIGINT), `kill`, `docker stop` or Kubernetes (SIGTERM). Either way the real
process ends within a bound, with exit status 0 and no traceback, having stopped what it runs:

- `renewals worker`: the Temporal worker shuts down (it says so) and its health and metrics
  endpoints stop answering;
- `renewals webhooks` and `renewals codec-server`: their HTTP servers close;
- `renewals stack`: also the dev server, the fake gateway, the codec server and the webhook service
  it started.

A process run by pytest may inherit SIGINT ignored (a non-interactive shell starts background jobs
so), which would hide the Ctrl-C path: each child gets the default dispositions before it execs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

import pytest
from temporalio import activity, workflow
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

import worker as worker_module
from activities.renewal import JourneyActivities
from renewals.channels.factory import recording_channels
from renewals.db.database import Database
from renewals.settings import Settings
from renewals.shutdown import _cancelled_by_signal
from starter.stack import _listening
from tests.harness import local_dev_server
from tests.test_stack import free_port
from worker import SEND_CHANNELS, JourneyWorkers, build_worker

ROOT = Path(__file__).resolve().parents[1]
STOP_WITHIN_SECONDS = 60
SIGNALS = pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["kill", "ctrl-c"])


@dataclass
class Stopped:
    status: int
    seconds: float
    output: str


def _default_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _collect(stream: IO[str], marker: str, lines: list[str], seen: threading.Event) -> None:
    """The process's output; `seen` is set at the marker, or when the output ends (it died)."""
    for line in stream:
        lines.append(line)
        if marker in line:
            seen.set()
    seen.set()


def run_then_signal(
    command: list[str], env: dict[str, str], cwd: Path, running: str, ports: dict[str, int], signum: int
) -> Stopped:
    """Start `command`, wait until it prints `running` with every one of `ports` answering, send
    `signum`, and wait (at most STOP_WITHIN_SECONDS) for it to end."""
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env={**os.environ, **env, "RENEWALS_LOG_FORMAT": "text", "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=_default_signals,
    )
    assert process.stdout is not None
    lines: list[str] = []
    seen = threading.Event()
    reader = threading.Thread(target=_collect, args=(process.stdout, running, lines, seen), daemon=True)
    reader.start()
    try:
        seen.wait(180)
        assert process.poll() is None and any(running in line for line in lines), (
            f"never said {running!r}:\n" + "".join(lines[-40:])
        )
        deadline = time.monotonic() + 30  # the worker logs "serving" just before its endpoints open
        while silent := [name for name, port in ports.items() if not _listening(f"127.0.0.1:{port}")]:
            assert time.monotonic() < deadline, f"not answering while running: {silent}"
            time.sleep(0.1)
        sent = time.monotonic()
        process.send_signal(signum)
        try:
            status = process.wait(STOP_WITHIN_SECONDS)
        except subprocess.TimeoutExpired:
            tail = "".join(lines[-40:])
            pytest.fail(f"still running {STOP_WITHIN_SECONDS} s after signal {signum}:\n{tail}")
        seconds = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(10)
    return Stopped(status, seconds, "".join(lines))


def assert_stopped_cleanly(stopped: Stopped, ports: dict[str, int]) -> None:
    assert stopped.status == 0, f"exit status {stopped.status}:\n{stopped.output[-4000:]}"
    assert stopped.seconds < STOP_WITHIN_SECONDS
    assert "Traceback" not in stopped.output, stopped.output[-4000:]
    still = [name for name, port in ports.items() if _listening(f"127.0.0.1:{port}")]
    assert still == [], f"still answering after the process ended: {still}"


async def test_a_second_signal_while_stopping_is_logged_not_obeyed(caplog: pytest.LogCaptureFixture) -> None:
    """Cutting a stop short is what leaves a dev server or a half-shut worker behind."""
    started, stopping, release = asyncio.Event(), asyncio.Event(), asyncio.Event()
    finished: list[str] = []

    async def service() -> str:
        started.set()
        try:
            await asyncio.Event().wait()  # runs until stopped
        finally:
            stopping.set()
            await release.wait()  # a slow step of its stop
            finished.append("stopped in full")
        return "never"

    caplog.set_level(logging.INFO, logger="renewals.shutdown")
    running = asyncio.create_task(_cancelled_by_signal(service()))
    await started.wait()  # the handlers are in place before the service runs
    os.kill(os.getpid(), signal.SIGTERM)
    await stopping.wait()
    os.kill(os.getpid(), signal.SIGINT)
    for _ in range(500):
        if any("SIGINT again: still stopping" in m for m in caplog.messages):
            break
        await asyncio.sleep(0.01)
    assert "SIGTERM: stopping" in caplog.messages and "SIGINT again: still stopping" in caplog.messages
    assert not running.done()
    release.set()
    assert await running is None  # stopped by a signal
    assert finished == ["stopped in full"]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the loop's handlers are gone again


async def test_a_cancellation_no_signal_asked_for_is_not_a_clean_stop() -> None:
    """Exit 0 would tell systemd's Restart=on-failure that nothing went wrong."""

    async def service() -> None:
        raise asyncio.CancelledError  # e.g. a library's stray cancellation escaping

    with pytest.raises(asyncio.CancelledError):
        await _cancelled_by_signal(service())


async def test_a_service_that_ends_by_itself_returns_its_result() -> None:
    async def service() -> int:
        return 3

    assert await _cancelled_by_signal(service()) == 3


@pytest.fixture(scope="module")
async def dev_server() -> AsyncIterator[WorkflowEnvironment]:
    env = await local_dev_server()
    yield env
    await env.shutdown()


@SIGNALS
async def test_a_signal_shuts_the_worker_down_gracefully(
    dev_server: WorkflowEnvironment, tmp_path: Path, signum: signal.Signals
) -> None:
    ports = {"metrics": free_port(), "health": free_port()}
    env = {
        "RENEWALS_TEMPORAL_ADDRESS": dev_server.client.service_client.config.target_host,
        "RENEWALS_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/renewals.db",
        "RENEWALS_METRICS_ADDRESS": f"127.0.0.1:{ports['metrics']}",
        "RENEWALS_WORKER_HEALTH_ADDRESS": f"127.0.0.1:{ports['health']}",
        "RENEWALS_TASK_QUEUE": f"signal-{signum.name}",
    }
    command = [sys.executable, "-m", "starter.cli", "worker"]
    stopped = run_then_signal(command, env, tmp_path, "worker serving", ports, signum)
    assert_stopped_cleanly(stopped, ports)
    assert f"{signum.name}: stopping" in stopped.output
    # the SDK's graceful shutdown, of the journey worker and each channel's, with the production grace,
    # asked for by Worker.shutdown() (a cancelled Worker.run() returns without waiting for the sends)
    assert stopped.output.count("Beginning worker shutdown, will wait 0:00:30") == 1 + len(SEND_CHANNELS)
    assert "Worker cancelled, shutting down" not in stopped.output


@SIGNALS
async def test_a_signal_stops_the_webhook_service_gracefully(
    dev_server: WorkflowEnvironment, tmp_path: Path, signum: signal.Signals
) -> None:
    ports = {"webhooks": free_port()}
    env = {
        "RENEWALS_TEMPORAL_ADDRESS": dev_server.client.service_client.config.target_host,
        "RENEWALS_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/renewals.db",
    }
    command = [sys.executable, "-m", "starter.cli", "webhooks", "--port", str(ports["webhooks"])]
    stopped = run_then_signal(command, env, tmp_path, "Uvicorn running", ports, signum)
    assert_stopped_cleanly(stopped, ports)
    assert f"{signum.name}: stopping" in stopped.output


@SIGNALS
def test_a_signal_stops_the_codec_server_gracefully(tmp_path: Path, signum: signal.Signals) -> None:
    ports = {"codec": free_port()}
    command = [sys.executable, "-m", "starter.cli", "codec-server", "--dev", "--port", str(ports["codec"])]
    stopped = run_then_signal(command, {}, tmp_path, "Codec server on", ports, signum)
    assert_stopped_cleanly(stopped, ports)
    assert f"{signum.name}: stopping" in stopped.output


@SIGNALS
def test_a_signal_stops_the_whole_stack_and_what_it_started(tmp_path: Path, signum: signal.Signals) -> None:
    ports = {
        name: free_port() for name in ("temporal", "ui", "gateway", "hooks", "codec", "metrics", "health")
    }
    env = {
        "RENEWALS_TEMPORAL_ADDRESS": f"127.0.0.1:{ports['temporal']}",
        "RENEWALS_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/renewals.db",
        "RENEWALS_GATEWAY_URL": f"http://127.0.0.1:{ports['gateway']}",
        "RENEWALS_GATEWAY_SMTP_PORT": str(free_port()),
        "RENEWALS_WEBHOOKS_PORT": str(ports["hooks"]),
        "RENEWALS_CODEC_SERVER_PORT": str(ports["codec"]),
        "RENEWALS_METRICS_ADDRESS": f"127.0.0.1:{ports['metrics']}",
        "RENEWALS_WORKER_HEALTH_ADDRESS": f"127.0.0.1:{ports['health']}",
        "RENEWALS_TASK_QUEUE": "stack-signal-test",
        "COLUMNS": "200",
    }
    command = [sys.executable, "-m", "starter.cli", "stack", "--ui-port", str(ports["ui"])]
    # cwd: the stack keeps its .data (the dev server's store, the logs) in the test's directory
    stopped = run_then_signal(command, env, tmp_path, "Worker running", ports, signum)
    assert_stopped_cleanly(stopped, ports)
    assert f"{signum.name}: stopping" in stopped.output


STEP_OUTCOMES: list[str] = []
STEP_STARTED = asyncio.Event()


@activity.defn
async def slow_step() -> str:
    """A send whose provider call is under way when the worker is told to stop."""
    STEP_STARTED.set()
    await activity.wait_for_worker_shutdown()
    try:
        await asyncio.sleep(0.5)  # the rest of the provider's answer
    except asyncio.CancelledError:
        STEP_OUTCOMES.append("cancelled")
        raise
    STEP_OUTCOMES.append("finished")
    return "sent"


@workflow.defn(name="SignalTestOneStep", sandboxed=False)
class OneStep:
    """Runs the one activity it is named, as a journey runs a send."""

    @workflow.run
    async def run(self, step: str) -> str:
        return str(await workflow.execute_activity(step, start_to_close_timeout=timedelta(seconds=60)))


@dataclass
class Stepping:
    workers: JourneyWorkers
    running: asyncio.Task[None]
    handle: WorkflowHandle[Any, Any]


async def worker_running_one_step(
    client: Client, db: Database, queue: str, step: Callable[[], Awaitable[str]], grace: timedelta
) -> Stepping:
    """The journey worker (as build_worker makes it, with `grace`) running, and a workflow whose one
    activity is `step`."""
    workers = build_worker(
        client,
        queue,
        JourneyActivities(db, recording_channels(db)),
        extra_workflows=[OneStep],
        extra_activities=[step],
        shutdown_grace=grace,
    )
    running = asyncio.create_task(workers.run())
    name = step.__name__  # each step's activity name is its function's (activity.defn without a name)
    handle: WorkflowHandle[Any, Any] = await client.start_workflow(
        "SignalTestOneStep", name, id=queue, task_queue=queue
    )
    return Stepping(workers, running, handle)


async def test_a_stopping_worker_lets_the_send_in_hand_finish(
    dev_server: WorkflowEnvironment, sqlite_db: Database
) -> None:
    """What SIGTERM does to `renewals worker` (its run cancelled), with the production grace: the
    activity under way finishes; with none (grace 0) it would be cut off."""
    grace = Settings().worker_shutdown_grace_seconds
    assert grace >= 30  # one send attempt's time-out
    STEP_OUTCOMES.clear()
    STEP_STARTED.clear()
    run = await worker_running_one_step(
        dev_server.client, sqlite_db, "signal-grace", slow_step, timedelta(seconds=grace)
    )
    try:
        await asyncio.wait_for(STEP_STARTED.wait(), 30)  # the send is under way
        run.running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(run.running, 30)
    finally:
        await run.handle.terminate()
    assert STEP_OUTCOMES == ["finished"]


STUBBORN_RELEASE = asyncio.Event()
STUBBORN_STARTED = asyncio.Event()


@activity.defn
async def stubborn_step() -> str:
    """An activity that ignores its cancellation (a library swallowing CancelledError, say)."""
    STUBBORN_STARTED.set()
    while not STUBBORN_RELEASE.is_set():
        with contextlib.suppress(asyncio.CancelledError):
            await STUBBORN_RELEASE.wait()
    return "late"


async def test_a_stop_that_cannot_finish_gives_up_after_its_bound(
    dev_server: WorkflowEnvironment, sqlite_db: Database, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """The process must exit even so: a supervisor, or a person at a terminal, should not need
    SIGKILL because one activity will not stop."""
    monkeypatch.setattr(worker_module, "STOP_MARGIN_SECONDS", 1)
    STUBBORN_STARTED.clear()
    STUBBORN_RELEASE.clear()
    run = await worker_running_one_step(
        dev_server.client, sqlite_db, "signal-bound", stubborn_step, timedelta(seconds=1)
    )
    assert run.workers.stop_seconds() == 2
    try:
        await asyncio.wait_for(STUBBORN_STARTED.wait(), 30)
        run.running.cancel()
        done, _ = await asyncio.wait([run.running], timeout=20)
        assert done == {run.running}, "the stop waited on the stubborn activity past its bound"
        assert any("workers not shut down after 2 s" in m for m in caplog.messages)
    finally:
        STUBBORN_RELEASE.set()
        await run.handle.terminate()
