"""`renewals stack`: the whole development stack in one command.

Starts the embedded Temporal dev server (persistent, UI on :8233, search attributes registered) unless
one already answers on the configured address, migrates the SQLite app database, imports the sample
portfolio and starts its journeys (idempotently), then runs the worker until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import subprocess
import sys
from datetime import date
from pathlib import Path

from rich.console import Console
from rich.table import Table
from temporalio.client import Client

from activities.intake import IntakeActivities
from activities.journey import JourneyActivities
from activities.sla import SlaActivities
from renewals.channels.factory import build_channels
from renewals.db.database import Database
from renewals.db.policies import upsert_policy
from renewals.rules import segment_of
from renewals.sample import sample_portfolio
from renewals.search_attributes import cli_flags
from renewals.settings import Settings, get_settings
from renewals.sla.search_attributes import cli_flags as sla_cli_flags
from starter.binaries import find_binary
from starter.journeys import start_journey
from starter.temporal_setup import ALL_KEYS, register_search_attributes
from worker import build_worker, connect

DATA = Path(".data")
UI = "http://127.0.0.1:8233"
console = Console(width=120)


def _listening(address: str) -> bool:
    host, _, port = address.rpartition(":")
    with (
        contextlib.suppress(OSError),
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=0.5),
    ):
        return True
    return False


def start_dev_server(settings: Settings) -> subprocess.Popen[bytes] | None:
    """The dev server with a persistent SQLite store, or None if a server already answers."""
    if _listening(settings.temporal_address):
        console.print(f"Temporal already answers on {settings.temporal_address}: using it")
        return None
    host, _, port = settings.temporal_address.rpartition(":")
    DATA.mkdir(exist_ok=True)
    log = (DATA / "temporal.log").open("ab")
    command = [
        find_binary("temporal"),
        "server",
        "start-dev",
        "--db-filename",
        str(DATA / "temporal.db"),
        "--ip",
        host or "127.0.0.1",
        "--port",
        port,
        "--ui-port",
        "8233",
        "--log-level",
        "warn",
        *cli_flags(),
        *sla_cli_flags(),
    ]
    console.print(f"Starting the Temporal dev server (log: {DATA / 'temporal.log'})")
    return subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)


def start_gateway(settings: Settings) -> subprocess.Popen[bytes] | None:
    """The sandbox gateway the adapters talk to in development (log: .data/gateway.jsonl)."""
    address = settings.gateway_url.split("://", 1)[-1].rstrip("/")
    if _listening(address):
        console.print(f"Sandbox gateway already answers on {settings.gateway_url}: using it")
        return None
    host, _, port = address.rpartition(":")
    DATA.mkdir(exist_ok=True)
    log = (DATA / "gateway.log").open("ab")
    command = [
        sys.executable,
        "-m",
        "renewals.gateway",
        "--host",
        host,
        "--port",
        port,
        "--smtp-port",
        str(settings.gateway_smtp_port),
        "--log",
        str(DATA / "gateway.jsonl"),
    ]
    console.print(
        f"Starting the sandbox gateway on {settings.gateway_url} (messages: {DATA / 'gateway.jsonl'})"
    )
    return subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)


async def wait_for_port(address: str, seconds: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not _listening(address):
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"nothing answers on {address} after {seconds:.0f} s")
        await asyncio.sleep(0.2)


async def wait_for_temporal(settings: Settings, seconds: float = 60) -> Client:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        try:
            return await connect(settings)
        except RuntimeError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)


async def start_sample_journeys(client: Client, db: Database, settings: Settings) -> None:
    table = Table(title="Sample journeys", show_lines=False)
    table.add_column("workflow id", no_wrap=True)
    for column in ("product", "last day", "segment", "agent"):
        table.add_column(column)
    for policy in sample_portfolio(date.today()):
        await upsert_policy(db, policy)
        handle = await start_journey(client, policy, settings.task_queue, settings.send_window())
        table.add_row(
            handle.id,
            policy.product.value,
            f"{policy.expires_on:%d.%m.%Y}",
            segment_of(policy).value,
            policy.agent.id,
        )
    console.print(table)


async def run_stack(settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    if settings.channels == "database":  # the stack sends through the sandbox gateway's real APIs
        settings = settings.model_copy(update={"channels": "gateway"})
    processes = [p for p in (start_dev_server(settings), start_gateway(settings)) if p is not None]
    db = Database(settings.database_url)
    try:
        if settings.channels == "gateway":
            await wait_for_port(settings.gateway_url.split("://", 1)[-1].rstrip("/"))
        client = await wait_for_temporal(settings)
        await register_search_attributes(client, settings.temporal_namespace, ALL_KEYS)
        await db.migrate()
        await start_sample_journeys(client, db, settings)
        console.print(
            f"\nTemporal UI: {UI}/namespaces/{settings.temporal_namespace}/workflows"
            "\nTry the query:  JourneyStage = 'scheduled' AND Product = 'KASKO'"
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
        await worker.run()
    finally:
        await db.dispose()
        for process in processes:
            process.terminate()
            process.wait(timeout=30)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill` stops the dev server too
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_stack())
