"""What the operations commands (intake, journeys, operators, reports, webhooks) share: the settings,
the migrated database, the Temporal client, the consoles and the progress bar.

`ops(argv, settings)` runs one of them as a coroutine, for callers that already run an event loop
(tests); `renewals ...` runs the same through `ops_command`. Exit codes: 0 done, 1 done with rejected
rows or failed items, 2 unusable input (bad arguments, unreadable file, refusal) or Temporal not
answering: every Temporal call of a command gives up after `RENEWALS_TEMPORAL_CALL_TIMEOUT_SECONDS`
(30 s) with one line saying what it waited for (a worker on the task queue, or the server).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from rich.console import Console

from renewals.settings import Settings
from renewals.shutdown import run_until_stopped

if TYPE_CHECKING:
    from rich.progress import Progress
    from temporalio.client import Client

    from renewals.db.database import Database

# Piped output (files, CI logs, tests) gets wide tables rather than ids cut to the terminal's width.
out = Console() if sys.stdout.isatty() else Console(width=180)
err = Console(stderr=True)

OpsHandler = Callable[[argparse.Namespace, Settings, "Database"], Awaitable[int]]


def ops_command(parser: argparse.ArgumentParser, handler: OpsHandler) -> None:
    """Make `handler` the parser's command, run with the settings and the migrated database."""
    parser.set_defaults(handler=lambda args: asyncio.run(_run(args)), ops_handler=handler)


def ops_service(parser: argparse.ArgumentParser, handler: OpsHandler) -> None:
    """`ops_command` for a service (`renewals webhooks`): it runs until SIGINT or SIGTERM stops it,
    gracefully and with exit status 0 (renewals.shutdown); a one-off command is interrupted by
    Ctrl-C as usual."""
    parser.set_defaults(handler=lambda args: run_until_stopped(_run(args)) or 0, ops_handler=handler)


async def ops(argv: list[str], settings: Settings | None = None) -> int:
    """`renewals ARGV` for an operations command, in the running event loop."""
    from starter.cli import build_parser

    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return await _run(args, settings)


async def _run(args: argparse.Namespace, settings: Settings | None = None) -> int:
    from temporalio.service import RPCError, RPCStatusCode

    from renewals.db.database import Database
    from renewals.temporal.connection import TemporalTimeout

    settings = settings or Settings()
    db = Database(settings.database_url)
    try:
        await db.migrate()
        code: int = await args.ops_handler(args, settings, db)
        return code
    except TemporalTimeout as timeout:
        err.print(f"{args.command}: {timeout}", markup=False, highlight=False, soft_wrap=True)
        return 2
    except RPCError as error:  # a listing's page (not intercepted one by one) past its RPC timeout
        if error.status is not RPCStatusCode.DEADLINE_EXCEEDED:
            raise
        what = f"waiting for Temporal at {settings.temporal_address}: is the server reachable?"
        waited = settings.temporal_call_timeout_seconds
        err.print(f"{args.command}: gave up after {waited:g}s {what}", markup=False, soft_wrap=True)
        return 2
    finally:
        await db.dispose()


async def client(settings: Settings, timeout: bool = True) -> Client:
    """The command's Temporal client: each call gives up after `temporal_call_timeout_seconds` (a
    `TemporalTimeout`, one line on stderr and exit 2); `timeout=False` for a long-running service."""
    from renewals.temporal.connection import connect

    return await connect(settings, settings.temporal_call_timeout_seconds if timeout else None)


def progress() -> Progress:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )


def tracked(bar: Progress, description: str) -> tuple[Callable[[int], None], Callable[[int], None]]:
    """`(total, advance)` callbacks that drive one task of the progress bar."""
    task = bar.add_task(description, total=None)
    return (lambda n: bar.update(task, total=n)), (lambda n: bar.advance(task, n))
