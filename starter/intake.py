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
    from temporalio.client import Client

    from renewals.db.database import Database
    from renewals.intake.importer import Changes
    from renewals.intake.start_plan import StartPlan
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
    from renewals.intake.records import FileFormatError

    sync = None if args.no_sync else _JourneySync(settings, db)
    try:
        if err.is_terminal:
            with ops.progress() as progress:
                total, advance = ops.tracked(progress, f"import {args.file.name}")
                report = await import_file(db, args.file, date.today(), args.rejects, total, advance, sync)
        else:  # a log file gets the report lines only, never a bar drawn at a guessed width
            report = await import_file(db, args.file, date.today(), args.rejects, on_changed=sync)
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
    if sync is not None and sync.counts:
        out.print("running journeys: " + ", ".join(f"{k}: {v}" for k, v in sorted(sync.counts.items())))
    return 0 if report.ok else 1


class _JourneySync:
    """The import's sink for changed policies: each batch goes to the running journeys as it is stored
    (nothing is held for the end). Temporal is reached on the first change; if it cannot be, the
    import goes on without it and says so once — `renewals start` passes the changes on later."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings, self.db = settings, db
        self.counts: dict[str, int] = {}
        self._client: Client | None = None
        self._plan: StartPlan | None = None
        self._unreachable = False

    async def __call__(self, changes: Changes) -> None:
        from renewals.intake.journey_sync import sync_journeys
        from renewals.intake.start_plan import StartPlan

        if self._unreachable:
            self._count("not updated (Temporal unreachable)", len(changes))
            return
        if self._client is None:
            try:
                self._client = await ops.client(self.settings)
            except Exception as error:  # an unreachable Temporal must not lose the import
                self._unreachable = True
                err.print(
                    f"[yellow]journeys not updated[/] (Temporal: {error}); `renewals start` passes changes on"
                )
                self._count("not updated (Temporal unreachable)", len(changes))
                return
        if self._plan is None:  # the gate's measured rates every synced journey's agent card carries
            self._plan = await StartPlan.prepare(self.db, date.today(), (), self.settings.gate())
        for policy, result, reason in await sync_journeys(self._client, self.db, changes, plan=self._plan):
            self._count(result.value)
            if reason:
                err.print(
                    f"{policy.number}: journey refused the change: {reason}", markup=False, soft_wrap=True
                )

    def _count(self, name: str, count: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + count


async def _start(args: argparse.Namespace, settings: Settings, db: Database) -> int:
    from renewals.experiments.registry import ExperimentChanged
    from renewals.intake.journey_sync import Start, start_due_journeys
    from renewals.intake.start_plan import StartPlan

    horizon = args.horizon_days or settings.intake_horizon_days
    today = date.today()
    try:
        plan = await StartPlan.prepare(db, today, settings.experiments, settings.gate())
    except ExperimentChanged as refused:
        err.print(f"start: {refused}", markup=False, soft_wrap=True)
        return 2
    client = await ops.client(settings)
    with ops.progress() as progress:
        total, advance = ops.tracked(progress, f"journeys ending within {horizon} days")
        summary = await start_due_journeys(
            client, db, today, horizon, settings.task_queue, settings.send_window(), total, advance, plan=plan
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
