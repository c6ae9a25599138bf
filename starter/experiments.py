"""`renewals experiments list|report`: the holdout experiments and whether the reminders renewed the
policy ([docs/experiments.md](../docs/experiments.md))."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from starter import ops
from starter.commands import Commands
from starter.ops import err, out

if TYPE_CHECKING:
    from renewals.db.database import Database
    from renewals.settings import Settings


def register(commands: Commands) -> None:
    experiments = commands.add_parser(
        "experiments",
        help="holdout experiments: list them, report their uplift (see `renewals experiments -h`)",
    )
    sub = experiments.add_subparsers(dest="experiments_command", required=True)
    listing = sub.add_parser("list", help="the configured experiments, as registered, with their arms")
    ops.ops_command(listing, _list)
    report = sub.add_parser("report", help="uplift per arm, product and segment; last-touch attribution")
    report.add_argument(
        "--as-of", type=date.fromisoformat, default=None, help="count terms ended before this day"
    )
    report.add_argument("--window-days", type=int, default=7, help="last touch at most this long before (7)")
    report.add_argument("--detect-pp", type=float, default=2.0, help="uplift the power column is sized for")
    report.add_argument("--csv", type=Path, help="also write the uplift table as CSV here")
    report.add_argument("--html", type=Path, help="also write a static HTML page here")
    ops.ops_command(report, _report)


async def _list(args: argparse.Namespace, settings: Settings, db: Database) -> int:
    from rich.table import Table
    from sqlalchemy import func, select

    from renewals.db.tables_experiments import ExperimentArmRow
    from renewals.experiments.registry import ExperimentChanged, register, registered

    try:
        await register(db, settings.experiments)
    except ExperimentChanged as refused:
        err.print(f"experiments: {refused}", markup=False, soft_wrap=True)
        return 2
    async with db.session() as session:
        query = select(ExperimentArmRow.experiment, ExperimentArmRow.arm, func.count()).group_by(
            ExperimentArmRow.experiment, ExperimentArmRow.arm
        )
        arms = {(name, arm): count for name, arm, count in (await session.execute(query)).all()}
    grid = Table(title="Holdout experiments")
    for column in ("experiment", "holds out", "share", "unit", "from", "to", "held out", "treated"):
        grid.add_column(column)
    configured = {e.name: e for e in settings.experiments}
    for row in await registered(db):
        holds = ", ".join(configured[row.name].hold_out) if row.name in configured else row.hold_out
        grid.add_row(
            row.name + ("" if row.name in configured else " (no longer configured)"),
            holds,
            f"{row.share:.1%}",
            row.unit,
            str(row.starts_on),
            str(row.ends_on),
            str(arms.get((row.name, "holdout"), 0)),
            str(arms.get((row.name, "treatment"), 0)),
        )
    out.print(grid)
    return 0


async def _report(args: argparse.Namespace, settings: Settings, db: Database) -> int:
    from renewals.experiments.report import experiment_report, report_csv, report_html, report_tables

    report = await experiment_report(db, args.as_of or date.today(), args.window_days, args.detect_pp)
    out.print(report_tables(report))
    for path, text in ((args.csv, report_csv), (args.html, report_html)):
        if path is not None:
            path.write_text(text(report), encoding="utf-8")
            out.print(f"written {path}")
    return 0
