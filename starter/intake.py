"""`renewals import`, `renewals start`, `renewals schedule install`: the portfolio in, journeys out."""

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
    intake = commands.add_parser(
        "import", help="import policies, agents and centres from CSV or JSONL (see `renewals import -h`)"
    )
    intake.add_argument("file", type=Path)
    intake.add_argument(
        "--rejects", type=Path, help="where to write rejected rows (default FILE.rejects.EXT)"
    )
    intake.add_argument("--no-sync", action="store_true", help="do not pass changes on to running journeys")
    ops.ops_command(intake, _import)

    start = commands.add_parser(
        "start", help="start journeys for policies ending within the horizon (see `renewals start -h`)"
    )
    start.add_argument("--horizon-days", type=int, default=None)
    ops.ops_command(start, _start)

    schedule = commands.add_parser(
        "schedule", help="install the daily intake schedule (see `renewals schedule -h`)"
    )
    schedule_commands = schedule.add_subparsers(dest="schedule_command", required=True)
    install = schedule_commands.add_parser("install", help="create or update the daily intake schedule")
    install.add_argument("--horizon-days", type=int, default=None)
    install.add_argument("--at", default=None, help="local time HH:MM (default 07:00)")
    install.add_argument("--timezone", default=None, help="default Europe/Moscow")
    ops.ops_command(install, _schedule_install)


async def _import(args: argparse.Namespace, settings: Settings, db: Database) -> int:
    from renewals.intake.importer import import_file
    from renewals.intake.journey_sync import sync_journeys
    from renewals.intake.records import FileFormatError

    try:
        if err.is_terminal:
            with ops.progress() as progress:
                total, advance = ops.tracked(progress, f"import {args.file.name}")
                report = await import_file(
                    db, args.file, date.today(), args.rejects, total, advance, keep_changed=not args.no_sync
                )
        else:  # a log file gets the report lines only, never a bar drawn at a guessed width
            report = await import_file(
                db, args.file, date.today(), args.rejects, keep_changed=not args.no_sync
            )
    except (FileFormatError, OSError) as error:
        err.print(f"[red]cannot import[/]: {error}", soft_wrap=True)  # one line, never wrapped
        return 2
    for rejection in report.rejections:
        err.print(str(rejection), markup=False, highlight=False, soft_wrap=True)
    counts = ", ".join(f"{name}: {count}" for name, count in sorted(report.counts.items()))
    out.print(
        f"{report.file}: {report.rows} rows; {counts or 'nothing stored'}; rejected: {report.rejected_rows}",
        markup=False,
        soft_wrap=True,
    )
    if report.rejects_file is not None:
        out.print(
            f"rejected rows written to {report.rejects_file} (fix them there and import that file)",
            markup=False,
            soft_wrap=True,
        )
    if report.rows and not report.changed and all(name.endswith(" unchanged") for name in report.counts):
        out.print("unchanged: nothing stored, no journey to update", soft_wrap=True)
    if report.changed and not args.no_sync:
        try:
            client = await ops.client(settings)
        except Exception as error:  # an unreachable Temporal must not lose the import
            err.print(
                f"[yellow]journeys not updated[/] (Temporal: {error}); `renewals start` passes changes on"
            )
        else:
            synced: dict[str, int] = {}
            for policy, result, reason in await sync_journeys(client, db, report.changed):
                synced[result.value] = synced.get(result.value, 0) + 1
                if reason:
                    err.print(
                        f"{policy.number}: journey refused the change: {reason}", markup=False, soft_wrap=True
                    )
            out.print("running journeys: " + ", ".join(f"{k}: {v}" for k, v in sorted(synced.items())))
    return 0 if report.ok else 1


async def _start(args: argparse.Namespace, settings: Settings, db: Database) -> int:
    from renewals.intake.journey_sync import Start, start_due_journeys

    horizon = args.horizon_days or settings.intake_horizon_days
    client = await ops.client(settings)
    with ops.progress() as progress:
        total, advance = ops.tracked(progress, f"journeys ending within {horizon} days")
        summary = await start_due_journeys(
            client, db, date.today(), horizon, settings.task_queue, settings.send_window(), total, advance
        )
    for problem in summary.problems:
        err.print(problem, markup=False)
    out.print(summary.line())
    return 1 if summary.counts.get(Start.FAILED.value) else 0


async def _schedule_install(args: argparse.Namespace, settings: Settings, db: Database) -> int:
    from renewals.intake.daily_run import IntakeRequest
    from renewals.intake.schedule import SCHEDULE_ID, WORKFLOW_TYPE, install_schedule

    horizon = args.horizon_days or settings.intake_horizon_days
    at = args.at or settings.intake_schedule_at.strftime("%H:%M")
    hour, _, minute = str(at)[:5].partition(":")
    timezone = args.timezone or settings.intake_schedule_timezone
    request = IntakeRequest(horizon_days=horizon, task_queue=settings.task_queue, timezone=timezone)
    client = await ops.client(settings)
    result = await install_schedule(client, request, int(hour), int(minute or 0), timezone)
    what = f"{WORKFLOW_TYPE} every day at {at} {timezone}, horizon {horizon} days"
    out.print(f"schedule {SCHEDULE_ID} {result}: {what}")
    return 0
