"""The long-running processes against the configured Temporal: `renewals worker` (worker.py) and
`renewals webhooks` (provider and portal callbacks, and the operator API)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from starter import ops
from starter.commands import Commands
from starter.ops import err

if TYPE_CHECKING:
    from renewals.db.database import Database
    from renewals.settings import Settings


def register_worker(commands: Commands) -> None:
    worker = commands.add_parser("worker", help="run a worker against the configured Temporal")
    worker.set_defaults(handler=_worker)


def register_webhooks(commands: Commands) -> None:
    webhooks = commands.add_parser(
        "webhooks",
        help="serve provider and portal callbacks and the operator API (see `renewals webhooks -h`)",
    )
    webhooks.add_argument("--port", type=int, default=None)
    webhooks.add_argument("--host", default=None)
    ops.ops_command(webhooks, _webhooks)


def _worker(args: argparse.Namespace) -> int:
    from worker import main

    main()
    return 0


def webhook_secrets(settings: Settings) -> dict[str, str]:
    return {source: value.get_secret_value() for source, value in settings.webhook_secrets.items()}


async def _webhooks(args: argparse.Namespace, settings: Settings, db: Database) -> int:
    import uvicorn

    from renewals.webhooks.app import create_app

    secrets = webhook_secrets(settings)
    if not secrets:
        err.print(
            "[yellow]no webhook secrets configured[/] (RENEWALS_WEBHOOK_SECRETS): every callback gets 401"
        )
    app = create_app(db, await ops.client(settings, timeout=False), secrets)
    host = args.host or settings.webhooks_host
    port = args.port or settings.webhooks_port
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="info"))
    await server.serve()
    return 0
