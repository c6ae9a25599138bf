"""`renewals stack`: the whole development stack in one command.

Starts the embedded Temporal dev server (persistent, UI on :8233, search attributes registered) unless
one already answers on the configured address, and the fake provider gateway (`python -m
fake_providers`); migrates the SQLite app database, imports the sample portfolio and starts its
journeys (idempotently, recording them in `journey_sync` exactly as `renewals start` does, so a later
`renewals start` finds them "already running"), then runs the worker and the webhook service (the
gateway's delivery reports and Робот Даша's outcomes come back through it, signed) until Ctrl-C.

Payloads are encrypted (renewals/encryption): the stack also runs the codec server in development mode
(`renewals codec-server --dev`: on 127.0.0.1:RENEWALS_CODEC_SERVER_PORT, the dev server's UI served from
loopback without a token) and starts the dev server with `--ui-codec-endpoint` pointing at it, so the
local UI shows journeys decoded.

Observability (renewals/observability, docs/observability.md): the worker's metrics (the SDK's
`temporal_*` and our `renewals_*`) on RENEWALS_METRICS_ADDRESS, its health endpoints on
RENEWALS_WORKER_HEALTH_ADDRESS, the webhook service's `/metrics`, `/health/ready` and `/status`; the
stack says it is running only once both answer ready, and prints each URL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from renewals.search_attributes import cli_flags
from renewals.settings import Settings, get_settings
from starter.binaries import find_binary
from starter.commands import Commands
from starter.serve import webhook_secrets

if TYPE_CHECKING:
    import uvicorn
    from temporalio.client import Client

    from renewals.db.database import Database

DATA = Path(".data")
UI_PORT = 8233
console = Console(width=120)


def _listening(address: str) -> bool:
    host, _, port = address.rpartition(":")
    with (
        contextlib.suppress(OSError),
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=0.5),
    ):
        return True
    return False


# The dev server's SQLite store in WAL mode, synced at checkpoints rather than on every commit: its
# first workflow tasks ran 1.5× as fast so (docs/performance.md); a crash of the machine, not of the
# server, may lose the last moments, which a development store can afford.
SQLITE_PRAGMAS = ("--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal")


def start_dev_server(
    settings: Settings, data: Path = DATA, ui_port: int = UI_PORT, codec_endpoint: str | None = None
) -> subprocess.Popen[bytes] | None:
    """The dev server with a persistent SQLite store, its UI decoding payloads through `codec_endpoint`,
    or None if a server already answers."""
    if _listening(settings.temporal_address):
        console.print(f"Temporal already answers on {settings.temporal_address}: using it")
        if codec_endpoint:
            console.print(
                f"(its UI decodes payloads only if started with --ui-codec-endpoint {codec_endpoint})"
            )
        return None
    host, _, port = settings.temporal_address.rpartition(":")
    data.mkdir(exist_ok=True)
    log = (data / "temporal.log").open("ab")
    command = [
        find_binary("temporal"),
        "server",
        "start-dev",
        "--db-filename",
        str(data / "temporal.db"),
        *SQLITE_PRAGMAS,
        "--ip",
        host or "127.0.0.1",
        "--port",
        port,
        "--ui-port",
        str(ui_port),
        "--log-level",
        "warn",
        *(["--ui-codec-endpoint", codec_endpoint] if codec_endpoint else []),
        *cli_flags(),
    ]
    console.print(f"Starting the Temporal dev server (log: {data / 'temporal.log'})")
    return subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)


def start_gateway(
    settings: Settings, data: Path = DATA, secrets: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes] | None:
    """The fake provider gateway the adapters talk to in development (log: .data/gateway.jsonl). Its
    SMS delivery reports and robot outcomes go to the stack's webhook service, signed with `secrets`."""
    address = settings.gateway_url.split("://", 1)[-1].rstrip("/")
    if _listening(address):
        console.print(f"Fake provider gateway already answers on {settings.gateway_url}: using it")
        return None
    host, _, port = address.rpartition(":")
    data.mkdir(exist_ok=True)
    log = (data / "gateway.log").open("ab")
    command = [
        sys.executable,
        "-m",
        "fake_providers",
        "--host",
        host,
        "--port",
        port,
        "--smtp-port",
        str(settings.gateway_smtp_port),
        "--log",
        str(data / "gateway.jsonl"),
        "--sms-webhook-url",
        f"{_webhooks_url(settings)}/webhooks/sms",
        "--robot-webhook-url",
        f"{_webhooks_url(settings)}/webhooks/robot",
        "--callback-delay",
        "1",
    ]
    env = {**os.environ}  # secrets by environment, so they never show in `ps`
    for source in ("sms", "robot"):
        if secrets and source in secrets:
            env[f"GATEWAY_{source.upper()}_WEBHOOK_SECRET"] = secrets[source]
    # the HTTP e-mail API (Unisender Go's shape): its status webhooks, signed with the API key
    env["GATEWAY_EMAIL_WEBHOOK_URL"] = f"{_webhooks_url(settings)}/webhooks/email-api"
    if secrets and "email_api" in secrets:
        env["GATEWAY_EMAIL_WEBHOOK_KEY"] = secrets["email_api"]
    console.print(
        f"Starting the fake provider gateway on {settings.gateway_url} (messages: {data / 'gateway.jsonl'})"
    )
    return subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True, env=env)


def stack_codec_server(settings: Settings, ui_port: int = UI_PORT) -> uvicorn.Server | None:
    """The codec server in development mode for the dev server's UI (both spellings of its loopback
    address), or None if something already answers on its port."""
    from starter.codec import codec_server

    address = f"127.0.0.1:{settings.codec_server_port}"
    if _listening(address):
        console.print(f"A codec server already answers on {address}: the UI decodes through it")
        return None
    host = settings.temporal_address.rpartition(":")[0] or "127.0.0.1"
    origins = dict.fromkeys([f"http://{host}:{ui_port}", f"http://localhost:{ui_port}", settings.ui_origin])
    return codec_server(settings, dev=True, ui_origins=list(origins), log_level="warning")


def _webhooks_url(settings: Settings) -> str:
    return f"http://{settings.webhooks_host}:{settings.webhooks_port}"


def stack_secrets(settings: Settings) -> dict[str, str]:
    """The configured webhook secrets, or fresh ones for this run of the stack (development only:
    the gateway and the webhook service are both ours and learn them from this process)."""
    configured = webhook_secrets(settings)
    if configured:
        return configured
    return {
        source: secrets.token_hex(16)
        for source in ("sms", "email", "email_api", "vk", "robot", "portal", "operators", "partners")
    }


async def wait_for_port(address: str, seconds: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not _listening(address):
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"nothing answers on {address} after {seconds:.0f} s")
        await asyncio.sleep(0.2)


async def wait_until_ready(urls: list[str], seconds: float = 60) -> None:
    """Until every `…/health/ready` URL answers 200 (Temporal and the database answer, as each
    process sees them); a timeout names the ones that did not, with their last answer."""
    import httpx

    deadline = asyncio.get_running_loop().time() + seconds
    waiting: dict[str, str] = dict.fromkeys(urls, "no answer yet")
    async with httpx.AsyncClient(timeout=5) as http:
        while waiting:
            for url in list(waiting):
                try:
                    answer = await http.get(url)
                except httpx.HTTPError as error:
                    waiting[url] = type(error).__name__
                    continue
                if answer.status_code == 200:
                    del waiting[url]
                else:
                    waiting[url] = f"{answer.status_code} {answer.text[:200]}"
            if waiting and asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"not ready after {seconds:.0f} s: {waiting}")
            if waiting:
                await asyncio.sleep(0.2)


def _http(address: str) -> str:
    host, _, port = address.rpartition(":")
    return f"http://{'127.0.0.1' if host in ('', '0.0.0.0') else host}:{port}"


async def wait_for_temporal(settings: Settings, seconds: float = 60) -> Client:
    from renewals.temporal.connection import connect

    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        try:
            return await connect(settings)
        except RuntimeError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)


async def start_sample_journeys(client: Client, db: Database, settings: Settings) -> list[str]:
    """Store the sample portfolio and start its journeys; returns the workflow ids.

    Journeys started here get their `journey_sync` row (`save_started`), as `renewals start` gives
    them, so the next intake knows what they were told; a journey that already exists is left alone."""
    from temporalio.exceptions import WorkflowAlreadyStartedError

    from renewals.intake.journey_sync import save_started
    from renewals.intake.portfolio_store import load_policy, upsert_policy
    from renewals.models import Policy, journey_id
    from renewals.rules import segment_of
    from renewals.sample import sample_portfolio
    from renewals.temporal.journeys import start_journey

    table = Table(title="Sample journeys", show_lines=False)
    table.add_column("workflow id", no_wrap=True)
    for column in ("product", "last day", "segment", "agent", "journey"):
        table.add_column(column)
    started: list[Policy] = []
    ids: list[str] = []
    samples = sample_portfolio(date.today())
    for sample in samples:
        await upsert_policy(db, sample)
    for sample in samples:
        # Each journey gets its policy as the database gives it back once the whole portfolio is in
        # (a client shared by several policies is one row) — exactly what `renewals start` reads and
        # hashes; otherwise the next intake would see a "change" and update the journey.
        stored = await load_policy(db, sample.number, sample.expires_on)
        policy = stored.policy if stored is not None else sample
        try:
            await start_journey(client, policy, settings.task_queue, settings.send_window(), attach=False)
        except WorkflowAlreadyStartedError:
            fate = "already there"
        else:
            started.append(policy)
            fate = "started"
        ids.append(journey_id(policy.number, policy.expires_on))
        table.add_row(
            ids[-1],
            policy.product.value,
            f"{policy.expires_on:%d.%m.%Y}",
            segment_of(policy).value,
            policy.agent.id,
            fate,
        )
    await save_started(db, started)
    console.print(table)
    return ids


async def run_stack(settings: Settings | None = None, data: Path = DATA, ui_port: int = UI_PORT) -> None:
    """Everything `./run stack` runs, until cancelled (Ctrl-C): what it started, it stops."""
    import uvicorn

    from renewals.db.database import Database
    from renewals.observability.runtime import install_metrics_runtime, metrics_url
    from renewals.shutdown import embedded_server, serve
    from renewals.temporal.setup import ALL_KEYS, register_search_attributes
    from renewals.webhooks.app import create_app
    from worker import assemble_worker

    settings = settings or get_settings()
    if settings.channels == "database":  # the stack sends through the fake providers' real APIs
        # e-mail through the HTTP API (opens come back as webhooks), SMTP behind it
        settings = settings.model_copy(update={"channels": "gateway", "gateway_email": "api"})
    # Before any client: the process's runtime serves the worker's metrics (temporal_* and renewals_*).
    runtime = install_metrics_runtime(settings.metrics_address)
    hooks = stack_secrets(settings)
    codec_endpoint = f"http://127.0.0.1:{settings.codec_server_port}"
    codec = stack_codec_server(settings, ui_port)
    processes = [
        p
        for p in (
            start_dev_server(settings, data, ui_port, codec_endpoint),
            start_gateway(settings, data, hooks),
        )
        if p is not None
    ]
    db = Database(settings.database_url)
    codec_serving: asyncio.Task[None] | None = None
    try:
        if codec is not None:
            codec_serving = asyncio.create_task(serve(codec))
        if settings.channels == "gateway":
            await wait_for_port(settings.gateway_url.split("://", 1)[-1].rstrip("/"))
        client = await wait_for_temporal(settings)
        await register_search_attributes(client, settings.temporal_namespace, ALL_KEYS)
        await db.migrate()
        await start_sample_journeys(client, db, settings)
        worker, telemetry = assemble_worker(settings, client, db, runtime)
        webhooks = embedded_server(
            uvicorn.Config(
                create_app(db, client, hooks),
                host=settings.webhooks_host,
                port=settings.webhooks_port,
                log_level="warning",
                log_config=None,  # uvicorn's lines go through our handler (masked), not its own
            )
        )
        working = asyncio.create_task(worker.run())
        serving = asyncio.create_task(serve(webhooks))
        running = asyncio.gather(working, serving)
        health = settings.worker_health_address
        try:
            async with telemetry.serving(
                client, lambda: not running.done(), health, settings.metrics_poll_seconds
            ):
                ready = [f"{_webhooks_url(settings)}/health/ready"]
                ready += [f"{_http(health)}/health/ready"] if health else []
                await _until_ready_or_failed(running, ready)
                hooks_url = _webhooks_url(settings)
                worker_metrics = metrics_url(settings.metrics_address) if settings.metrics_address else "off"
                console.print(
                    f"\nTemporal UI: http://127.0.0.1:{ui_port}/namespaces/{settings.temporal_namespace}"
                    f"/workflows (payloads decoded by the codec server {codec_endpoint})"
                    "\nTry the query:  JourneyStage = 'scheduled' AND Product = 'KASKO'"
                    f"\nWebhooks and the operator workbench: {hooks_url}/docs"
                    f"\nStatus page: {hooks_url}/status"
                    f"\nMetrics: worker {worker_metrics}, webhooks {hooks_url}/metrics"
                    f"\nHealth: {', '.join(ready)} (and /health/live)"
                    "\nWorker running; Ctrl-C stops the stack.\n"
                )
                await asyncio.shield(running)  # cancelled, the finally below stops both
        finally:
            working.cancel()
            await _stop(serving)
            await asyncio.wait([working])  # the sends in hand finish first (bounded: JourneyWorkers.run)
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await running  # retrieves what stopped them; the caller has its own error already
    finally:
        await db.dispose()
        if codec_serving is not None:
            await _stop(codec_serving)
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:  # e.g. the gateway still retrying callbacks: enough
                process.kill()
                process.wait()


async def _stop(serving: asyncio.Task[None]) -> None:
    """A server's graceful stop (renewals.shutdown.serve, bounded); never raises, so what the stack
    started after it still gets stopped."""
    serving.cancel()
    await asyncio.wait([serving])


async def _until_ready_or_failed(running: asyncio.Future[Any], urls: list[str]) -> None:
    """Wait for readiness, unless the worker or the webhook service stops first (say, its port is
    taken): then its error, not a readiness timeout, is what the stack reports."""
    waiting: asyncio.Future[Any] = asyncio.ensure_future(wait_until_ready(urls))
    try:
        await asyncio.wait([waiting, running], return_when=asyncio.FIRST_COMPLETED)
        if running.done() and not waiting.done():
            running.result()  # raises what stopped it
        await waiting
    finally:
        waiting.cancel()  # stopped (a signal) or failed before it was ready: no poller left behind


def register(commands: Commands) -> None:
    stack = commands.add_parser(
        "stack", help="dev server + database + sample journeys + worker (Ctrl-C stops)"
    )
    stack.add_argument(
        "--ui-port", type=int, default=UI_PORT, help=f"the dev server's Web UI port (default {UI_PORT})"
    )
    stack.set_defaults(handler=_stack)


def _stack(args: argparse.Namespace) -> int:
    main(args.ui_port)
    return 0


def main(ui_port: int = UI_PORT) -> None:
    from renewals.observability.logs import configure_logging
    from renewals.shutdown import run_until_stopped

    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)  # a terminal gets text, a pipe JSON
    # Ctrl-C or `kill`: run_stack's finally stops what it started, the dev server too.
    run_until_stopped(run_stack(ui_port=ui_port))
