"""`renewals setup`: make the configured namespace ready for journeys (search attributes, and the
retention period of closed journeys: `RENEWALS_TEMPORAL_RETENTION_DAYS`, 90 by default).

Works against the dev server, a self-hosted cluster and Temporal Cloud, where it prints the `tcld`
commands a namespace admin runs instead of failing (see renewals/temporal/setup.py).
"""

from __future__ import annotations

import asyncio
import sys

from renewals.settings import Settings, get_settings
from renewals.temporal.connection import connect
from renewals.temporal.setup import ALL_KEYS, is_cloud, set_retention, setup_namespace
from starter.commands import Commands


def register(commands: Commands) -> None:
    setup = commands.add_parser(
        "setup", help="register the search attributes and set the retention in the configured namespace"
    )
    setup.set_defaults(handler=lambda _: asyncio.run(main()))


async def main(settings: Settings | None = None) -> int:
    settings = settings or get_settings()
    try:
        client = await asyncio.wait_for(connect(settings), settings.temporal_call_timeout_seconds)
    except TimeoutError:
        where = f"{settings.temporal_address} (namespace {settings.temporal_namespace})"
        waited = settings.temporal_call_timeout_seconds
        print(f"setup: gave up after {waited:g}s waiting for Temporal at {where}", file=sys.stderr)
        return 2
    cloud = is_cloud(settings)
    result = await setup_namespace(client, settings.temporal_namespace, ALL_KEYS, cloud=cloud)
    print(result.report())
    retention = await set_retention(
        client,
        settings.temporal_namespace,
        settings.temporal_retention_days,
        cloud=cloud,
        intake_horizon_days=settings.intake_horizon_days,
    )
    print(retention.report())
    return 0
