"""`renewals cancel POLICY --reason … --by …`: cancel a policy's running journey.

It sends Temporal's cancellation request (the UI's «Request Cancellation» does the same), which the
journey handles: outcome `cancelled` with the reason, operator tasks closed, outcome recorded, then
the workflow ends as Canceled. The command waits up to `--wait` seconds to report the journey closed.
Exit codes: 0 requested (and closed, or still closing), 2 refused (no such journey, already ended, a
reason missing or quoting a phone or e-mail).
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import date
from typing import TYPE_CHECKING

from starter import ops
from starter.commands import Commands
from starter.ops import err, out

if TYPE_CHECKING:
    from renewals.db.database import Database
    from renewals.settings import Settings


def register(commands: Commands) -> None:
    parser = commands.add_parser(
        "cancel", help="cancel a policy's running journey, with a reason (see `renewals cancel -h`)"
    )
    parser.add_argument("policy", help="the policy number (or the journey id, renewal-…)")
    parser.add_argument("--reason", required=True, help="why (kept in clear: no client contacts)")
    parser.add_argument("--by", required=True, help="who cancels (your name)")
    parser.add_argument(
        "--expires-on",
        type=date.fromisoformat,
        help="the term's last day of cover (default: the next to end)",
    )
    parser.add_argument("--wait", type=float, default=10.0, help="seconds to wait for it to close (10)")
    ops.ops_command(parser, _cancel)


async def _cancel(args: argparse.Namespace, settings: Settings, db: Database) -> int:
    from renewals.operators.cancel import cancel
    from renewals.operators.workbench import Refused
    from renewals.temporal.journeys import journey_state

    client = await ops.client(settings)
    try:
        requested = await cancel(db, client, args.policy, args.expires_on, args.reason, args.by)
    except Refused as refusal:
        err.print(f"refused: {refusal.reason}", markup=False, soft_wrap=True)
        return 2
    out.print(f"{requested.journey_id}: cancellation requested ({requested.reason})", markup=False)
    deadline = asyncio.get_running_loop().time() + max(args.wait, 0.0)
    while True:
        state = await journey_state(client, requested.journey_id)
        if state is not None and not state.running:
            status = state.status.name.lower() if state.status else "closed"
            out.print(f"{requested.journey_id}: {status}, stage {state.stage}", markup=False)
            return 0
        if asyncio.get_running_loop().time() >= deadline:
            out.print(
                f"{requested.journey_id}: still closing (it ends as soon as a worker runs it)", markup=False
            )
            return 0
        await asyncio.sleep(0.2)
