"""`renewals setup`: make the configured namespace ready for journeys (search attributes).

Works against the dev server, a self-hosted cluster and Temporal Cloud, where it prints the `tcld`
command a namespace admin runs instead of failing (see renewals/temporal/setup.py).
"""

from __future__ import annotations

import asyncio

from renewals.settings import Settings, get_settings
from renewals.temporal.connection import connect
from renewals.temporal.setup import ALL_KEYS, is_cloud, setup_namespace
from starter.commands import Commands


def register(commands: Commands) -> None:
    setup = commands.add_parser("setup", help="register the search attributes in the configured namespace")
    setup.set_defaults(handler=lambda _: asyncio.run(main()))


async def main(settings: Settings | None = None) -> int:
    settings = settings or get_settings()
    client = await connect(settings)
    result = await setup_namespace(client, settings.temporal_namespace, ALL_KEYS, cloud=is_cloud(settings))
    print(result.report())
    return 0
