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
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

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
    return codec_server(settings, dev=True, ui_origins=list(origins), log_level="warning", embedded=True)


def _webhooks_url(settings: Settings) -> str:
    return f"http://{settings.webhooks_host}:{settings.webhooks_port}"


def stack_secrets(settings: Settings) -> dict[str, str]:
    """The configured webhook secrets, or fresh ones for this run of the stack (development only:
    the gateway and the webhook service are both ours and learn them from this process)."""
    configured = webhook_secrets(settings)
    if configured:
        return configured
    return {
        source: secrets.token_hex(16) for source in ("sms", "email", "vk", "robot", "portal", "operators")
    }


async def wait_for_port(address: str, seconds: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not _listening(address):
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"nothing answers on {address} after {seconds:.0f} s")
        await asyncio.sleep(0.2)


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

    from activities.intake import IntakeActivities
    from activities.renewal import JourneyActivities
    from activities.sla import SlaActivities
    from renewals.channels.factory import build_channels
    from renewals.db.database import Database
    from renewals.temporal.setup import ALL_KEYS, register_search_attributes
    from renewals.webhooks.app import create_app
    from worker import build_worker

    settings = settings or get_settings()
    if settings.channels == "database":  # the stack sends through the fake providers' real APIs
        settings = settings.model_copy(update={"channels": "gateway"})
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
            codec_serving = asyncio.create_task(codec.serve())
        if settings.channels == "gateway":
            await wait_for_port(settings.gateway_url.split("://", 1)[-1].rstrip("/"))
        client = await wait_for_temporal(settings)
        await register_search_attributes(client, settings.temporal_namespace, ALL_KEYS)
        await db.migrate()
        await start_sample_journeys(client, db, settings)
        console.print(
            f"\nTemporal UI: http://127.0.0.1:{ui_port}/namespaces/{settings.temporal_namespace}/workflows"
            f" (payloads decoded by the codec server {codec_endpoint})"
            "\nTry the query:  JourneyStage = 'scheduled' AND Product = 'KASKO'"
            f"\nWebhooks and the operator workbench: {_webhooks_url(settings)}/docs"
            "\nWorker running; Ctrl-C stops the stack.\n"
        )
        worker = build_worker(
            client,
            settings.task_queue,
            JourneyActivities(db, build_channels(settings, db), settings.channel_pause_minutes),
            rates=settings.rates(),
            extra_activities=[
                *SlaActivities(db).all(),
                *IntakeActivities(client, db, settings.send_window()).all(),
            ],
        )
        webhooks = uvicorn.Server(
            uvicorn.Config(
                create_app(db, client, hooks),
                host=settings.webhooks_host,
                port=settings.webhooks_port,
                log_level="warning",
            )
        )
        await asyncio.gather(worker.run(), webhooks.serve())
    finally:
        await db.dispose()
        if codec is not None and codec_serving is not None:
            codec.should_exit = True  # a graceful stop: it closes its socket
            await asyncio.wait([codec_serving], timeout=10)  # never raises: the processes get stopped
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:  # e.g. the gateway still retrying callbacks: enough
                process.kill()
                process.wait()


def register(commands: Commands) -> None:
    stack = commands.add_parser(
        "stack", help="dev server + database + sample journeys + worker (Ctrl-C stops)"
    )
    stack.set_defaults(handler=_stack)


def _stack(args: argparse.Namespace) -> int:
    main()
    return 0


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill` stops the dev server too
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_stack())
