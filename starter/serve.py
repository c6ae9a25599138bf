"""The long-running processes against the configured Temporal: `renewals worker` (worker.py) and
`renewals webhooks` (provider and portal callbacks, and the operator API).

Both log one structured event per line (JSON unless on a terminal; RENEWALS_LOG_FORMAT) and serve
health endpoints and Prometheus metrics (docs/observability.md): the worker on
RENEWALS_METRICS_ADDRESS and RENEWALS_WORKER_HEALTH_ADDRESS, the webhook service on its own port
(`/metrics`, `/health/live`, `/health/ready`, `/status`)."""

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
    ops.ops_service(webhooks, _webhooks)


def register_migrate(commands: Commands) -> None:
    migrate = commands.add_parser(
        "migrate",
        help="bring the application database to the newest schema, once, before the workers start",
    )
    migrate.set_defaults(handler=_migrate)


def _migrate(args: argparse.Namespace) -> int:
    """Alembic to head (idempotent). Workers also migrate on start; in production this runs once
    first (deploy/systemd/renewals-migrate.service), so N workers never race to create a schema."""
    import asyncio

    from renewals.db.database import Database
    from renewals.settings import get_settings

    async def migrate() -> None:
        db = Database(get_settings().database_url)
        try:
            await db.migrate()
        finally:
            await db.dispose()

    asyncio.run(migrate())
    print("database schema is current")
    return 0


def _worker(args: argparse.Namespace) -> int:
    from worker import main

    main()
    return 0


def webhook_secrets(settings: Settings) -> dict[str, str]:
    return {source: value.get_secret_value() for source, value in settings.webhook_secrets.items()}


async def _webhooks(args: argparse.Namespace, settings: Settings, db: Database) -> int:
    import uvicorn

    from renewals.observability.logs import configure_logging
    from renewals.shutdown import embedded_server, serve
    from renewals.webhooks.app import create_app

    configure_logging(settings.log_format, settings.log_level)

    secrets = webhook_secrets(settings)
    if not secrets:
        err.print(
            "[yellow]no webhook secrets configured[/] (RENEWALS_WEBHOOK_SECRETS): every callback gets 401"
        )
    app = create_app(db, await ops.client(settings, timeout=False), secrets)
    host = args.host or settings.webhooks_host
    port = args.port or settings.webhooks_port
    # log_config=None: uvicorn's lines go through our handler (structured, masked), not its own.
    config = uvicorn.Config(app, host=host, port=port, log_level="info", log_config=None)
    await serve(embedded_server(config))
    return 0
