"""`renewals dashboard` and `renewals funnel`: the reports, in the terminal and as static HTML."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from starter import ops
from starter.commands import Commands
from starter.ops import out

if TYPE_CHECKING:
    from rich.console import RenderableType

    from renewals.db.database import Database
    from renewals.settings import Settings


class Report(NamedTuple):
    """What a report is made of: its data from the database, its terminal view, its HTML page."""

    load: Callable[[Database], Awaitable[Any]]
    terminal: Callable[[Any], RenderableType]
    html: Callable[[Any], str]


def _dashboard() -> Report:
    from renewals.reports import dashboard

    return Report(dashboard.agent_dashboard, dashboard.dashboard_table, dashboard.dashboard_html)


def _funnel() -> Report:
    from renewals.reports import funnel

    return Report(funnel.journey_funnel, funnel.funnel_tables, funnel.funnel_html)


def register(commands: Commands) -> None:
    for name, what, report in (
        ("dashboard", "agent renewal rates against the norms (terminal or --html)", _dashboard),
        ("funnel", "messages, contacts and renewals per channel and touchpoint", _funnel),
    ):
        parser = commands.add_parser(name, help=f"{what} (see `renewals {name} -h`)")
        parser.add_argument("--html", type=Path, help="also write a static HTML page here")
        ops.ops_command(parser, _showing(report))


def _showing(report: Callable[[], Report]) -> ops.OpsHandler:
    async def show(args: argparse.Namespace, settings: Settings, db: Database) -> int:
        load, terminal, html = report()  # imported only when the command runs
        data = await load(db)
        out.print(terminal(data))
        if args.html:
            args.html.write_text(html(data), encoding="utf-8")
            out.print(f"written {args.html}")
        return 0

    return show
