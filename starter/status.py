"""`renewals status POLICY` and `renewals list`: journeys as Temporal sees them, found by their search
attributes (visibility), read through the journey's status query."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from rich.table import Table

from renewals import search_attributes as sa
from renewals.journey_api import WORKFLOW_TYPE, JourneyStatus
from starter import ops
from starter.commands import Commands
from starter.ops import err, out

if TYPE_CHECKING:
    from renewals.db.database import Database
    from renewals.settings import Settings


def register(commands: Commands) -> None:
    status = commands.add_parser(
        "status", help="a policy's journey: stage, next touchpoint, timeline (see `renewals status -h`)"
    )
    status.add_argument("policy")
    ops.ops_command(status, _status)

    listing = commands.add_parser("list", help="journeys by stage, centre, agent (see `renewals list -h`)")
    listing.add_argument("--stage")
    listing.add_argument("--centre")
    listing.add_argument("--agent")
    listing.add_argument("--limit", type=int, default=200)
    ops.ops_command(listing, _list)


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def list_query(stage: str | None, centre: str | None, agent: str | None, policy: str | None = None) -> str:
    """The visibility query for journeys, narrowed by whichever of the attributes are given."""
    clauses = [f"WorkflowType = {_quoted(WORKFLOW_TYPE)}"]
    for key, value in ((sa.JOURNEY_STAGE, stage), (sa.RENEWAL_CENTRE, centre), (sa.AGENT_ID, agent)):
        if value:
            clauses.append(f"{key.name} = {_quoted(value)}")
    if policy:
        clauses.append(f"{sa.POLICY_NUMBER.name} = {_quoted(policy)}")
    return " AND ".join(clauses)


async def _status(args: argparse.Namespace, settings: Settings, db: Database) -> int:
    from renewals.temporal.journeys import journey_status

    client = await ops.client(settings)
    found = [wf async for wf in client.list_workflows(list_query(None, None, None, args.policy))]
    if not found:
        err.print(f"no journey for policy {args.policy}", markup=False)
        return 2
    latest = max(found, key=lambda wf: wf.start_time)
    status = await journey_status(client, latest.id)
    print_status(status, latest.status.name if latest.status else "?")
    return 0


def print_status(status: JourneyStatus, execution: str) -> None:
    head = f"[bold]{status.workflow_id}[/] · policy {status.policy_number}"
    out.print(f"{head} · stage [bold]{status.stage.value}[/] · {execution.lower()}")
    if status.next is not None:
        upcoming = status.next
        out.print(f"next: {upcoming.touchpoint} ({upcoming.channel.value}) at {upcoming.due_at.isoformat()}")
    timeline = Table(title="timeline")
    for column in ("at", "day", "touchpoint", "channel", "status", "reason"):
        timeline.add_column(column)
    for entry in status.timeline:
        timeline.add_row(
            entry.at.isoformat(timespec="minutes"),
            str(entry.day),
            entry.touchpoint,
            entry.channel.value,
            entry.status.value,
            entry.reason or "",
        )
    out.print(timeline)
    events = Table(title="events")
    for column in ("at", "type", "detail"):
        events.add_column(column)
    for event in status.events:
        events.add_row(event.at.isoformat(timespec="minutes"), event.type, event.detail or "")
    out.print(events)


async def _list(args: argparse.Namespace, settings: Settings, db: Database) -> int:
    client = await ops.client(settings)
    grid = Table(title=list_query(args.stage, args.centre, args.agent))
    for column in ("journey", "policy", "product", "stage", "ends", "agent", "centre", "status"):
        grid.add_column(column)
    count = 0
    async for wf in client.list_workflows(list_query(args.stage, args.centre, args.agent), limit=args.limit):
        attributes = wf.typed_search_attributes
        ends = attributes.get(sa.EXPIRES_ON)
        grid.add_row(
            wf.id,
            attributes.get(sa.POLICY_NUMBER) or "",
            attributes.get(sa.PRODUCT) or "",
            attributes.get(sa.JOURNEY_STAGE) or "",
            ends.date().isoformat() if ends else "",
            attributes.get(sa.AGENT_ID) or "",
            attributes.get(sa.RENEWAL_CENTRE) or "",
            wf.status.name.lower() if wf.status else "",
        )
        count += 1
    out.print(grid)
    out.print(f"{count} journeys")
    return 0
