"""`renewals purge --older-than DAYS` and `renewals forget --phone P | --policy N [--end]`: retention and
erasure of clients' personal data in the application database (152-FZ; renewals/retention.py says
which columns hold it and what each command does with them).

`forget` refuses (exit 2) while one of the client's journeys still runs: the journey would go on
contacting them. `--end` first ends it as opted out, waits until it has closed, then erases.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from starter import ops
from starter.commands import Commands
from starter.ops import err

if TYPE_CHECKING:
    from renewals.db.database import Database
    from renewals.settings import Settings


def register(commands: Commands) -> None:
    purge = commands.add_parser(
        "purge", help="anonymise what is kept about journeys finished more than DAYS ago (audit facts stay)"
    )
    purge.add_argument("--older-than", type=_days, required=True, metavar="DAYS")
    ops.ops_command(purge, _purge)

    forget = commands.add_parser(
        "forget", help="erase one client's personal data on request and print the act for the record"
    )
    who = forget.add_mutually_exclusive_group(required=True)
    who.add_argument("--phone", help="the client's phone, in any spelling")
    who.add_argument("--policy", help="a policy number of the client's")
    forget.add_argument(
        "--request", default="-", help="the request's reference (letter, ticket), for the act"
    )
    forget.add_argument(
        "--end", action="store_true", help="end the client's running journeys as opted out first"
    )
    ops.ops_command(forget, _forget)


def _days(value: str) -> int:
    try:
        days = int(value)
    except ValueError:
        days = -1
    if days < 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of days (0 or more)")
    return days


async def _purge(args: argparse.Namespace, settings: Settings, db: Database) -> int:
    from datetime import timedelta

    from renewals.retention import purge

    report = await purge(db, timedelta(days=args.older_than))
    print("\n".join(report.lines()))
    return 0


async def _forget(args: argparse.Namespace, settings: Settings, db: Database) -> int:
    from renewals.delivery import optout_hash_key
    from renewals.retention import (
        JourneyStillRunning,
        Subject,
        end_as_opted_out,
        find_client,
        forget,
        running_journeys,
    )

    records = await find_client(db, Subject(phone=args.phone, policy=args.policy))
    if args.policy and not records.found:
        err.print(f"refused: no policy {args.policy} in the database", markup=False, soft_wrap=True)
        return 2
    running: list[str] = []
    if records.journey_ids:
        client = await ops.client(settings)
        running = await running_journeys(client, records.journey_ids)
        if running and not args.end:
            err.print(
                f"refused: journey {', '.join(running)} is still running "
                "(--end ends it as opted out first, then erases)",
                markup=False,
                soft_wrap=True,
            )
            return 2
        try:
            await end_as_opted_out(client, running)
        except JourneyStillRunning as still:
            err.print(f"refused: {still}; nothing erased", markup=False, soft_wrap=True)
            return 2
    act = await forget(db, records, args.request, running, hash_key=optout_hash_key(settings))
    print("\n".join(act.lines()))
    return 0
