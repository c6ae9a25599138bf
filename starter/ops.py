"""Operations commands of `renewals`: intake, schedule, status and lists, the operator workbench,
reports and the webhook service.

`ops_main(argv)` is the entry point (argv without the program name); `ops(argv, settings)` is the same
as a coroutine, for callers that already run an event loop (tests). Exit codes: 0 done, 1 done with
rejected rows or failed items, 2 unusable input (bad arguments, unreadable file, refusal).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from temporalio.client import Client

from renewals.db.database import Database
from renewals.journey_api import JourneyStatus, OperatorOutcome
from renewals.settings import Settings

# Piped output (files, CI logs, tests) gets wide tables rather than ids cut to the terminal's width.
out = Console() if sys.stdout.isatty() else Console(width=180)
err = Console(stderr=True)

DEFAULT_HORIZON_DAYS = 60
DEFAULT_PORT = 8080


def webhook_secrets(settings: Settings) -> dict[str, str]:
    return {source: value.get_secret_value() for source, value in settings.webhook_secrets.items()}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="renewals", description="Prolongation journeys: operations")
    commands = parser.add_subparsers(dest="command", required=True)

    intake = commands.add_parser("import", help="import policies, agents and centres from CSV or JSONL")
    intake.add_argument("file", type=Path)
    intake.add_argument(
        "--rejects", type=Path, help="where to write rejected rows (default FILE.rejects.EXT)"
    )
    intake.add_argument("--no-sync", action="store_true", help="do not pass changes on to running journeys")

    start = commands.add_parser("start", help="start journeys for policies ending within the horizon")
    start.add_argument("--horizon-days", type=int, default=None)

    schedule = commands.add_parser("schedule", help="the daily intake schedule")
    schedule_commands = schedule.add_subparsers(dest="schedule_command", required=True)
    install = schedule_commands.add_parser("install", help="create or update the daily intake schedule")
    install.add_argument("--horizon-days", type=int, default=None)
    install.add_argument("--at", default=None, help="local time HH:MM (default 07:00)")
    install.add_argument("--timezone", default=None, help="default Europe/Moscow")

    status = commands.add_parser("status", help="a policy's journey: stage, next touchpoint, timeline")
    status.add_argument("policy")

    listing = commands.add_parser("list", help="journeys by stage, centre, agent")
    listing.add_argument("--stage")
    listing.add_argument("--centre")
    listing.add_argument("--agent")
    listing.add_argument("--limit", type=int, default=200)

    operator = commands.add_parser("operator", help="the renewal centre's workbench")
    operator_commands = operator.add_subparsers(dest="operator_command", required=True)
    tasks = operator_commands.add_parser("tasks", help="a centre's open tasks")
    tasks.add_argument("--centre", required=True)
    tasks.add_argument("--all", action="store_true", help="include closed tasks")
    tasks.add_argument(
        "--due", action="store_true", help="only tasks due now (call backs wait for their time)"
    )
    claim = operator_commands.add_parser("claim", help="claim a task")
    claim.add_argument("task", type=int)
    claim.add_argument("--operator", required=True)
    outcome = operator_commands.add_parser("outcome", help="record a task's outcome")
    outcome.add_argument("task", type=int)
    outcome.add_argument("outcome", choices=[o.value for o in OperatorOutcome])
    outcome.add_argument("--note")
    outcome.add_argument("--callback-at", help="ISO time with offset, e.g. 2027-03-20T15:00+03:00")
    outcome.add_argument("--operator")

    for name, what in (("dashboard", "agent renewal rates vs norms"), ("funnel", "journey funnel")):
        report = commands.add_parser(name, help=what)
        report.add_argument("--html", type=Path, help="also write a static HTML page here")

    webhooks = commands.add_parser("webhooks", help="serve the webhook and operator HTTP API")
    webhooks.add_argument("--port", type=int, default=None)
    webhooks.add_argument("--host", default=None)
    return parser


def ops_main(argv: list[str]) -> int:
    return asyncio.run(ops(argv))


async def ops(argv: list[str], settings: Settings | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    settings = settings or Settings()
    db = Database(settings.database_url)
    try:
        await db.migrate()
        code: int = await _COMMANDS[args.command](args, settings, db)
        return code
    finally:
        await db.dispose()


async def _client(settings: Settings) -> Client:
    from worker import connect

    return await connect(settings)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )


def _tracked(progress: Progress, description: str) -> tuple[Callable[[int], None], Callable[[int], None]]:
    task = progress.add_task(description, total=None)
    return (lambda n: progress.update(task, total=n)), (lambda n: progress.advance(task, n))


# ---- intake -------------------------------------------------------------------------------------


async def _import(args: argparse.Namespace, settings: Settings, db: Database) -> int:
    from renewals.intake.importer import import_file
    from renewals.intake.journeys import sync_journeys
    from renewals.intake.records import FileFormatError

    try:
        with _progress() as progress:
            total, advance = _tracked(progress, f"import {args.file.name}")
            report = await import_file(db, args.file, date.today(), args.rejects, total, advance)
    except (FileFormatError, OSError) as error:
        err.print(f"[red]cannot import[/]: {error}")
        return 2
    for rejection in report.rejections:
        err.print(str(rejection), markup=False, highlight=False)
    counts = ", ".join(f"{name}: {count}" for name, count in sorted(report.counts.items()))
    out.print(
        f"{report.file}: {report.rows} rows; {counts or 'nothing stored'}; rejected: {report.rejected_rows}"
    )
    if report.rejects_file is not None:
        out.print(f"rejected rows written to {report.rejects_file} (fix them there and import that file)")
    if report.changed and not args.no_sync:
        try:
            client = await _client(settings)
        except Exception as error:  # an unreachable Temporal must not lose the import
            err.print(
                f"[yellow]journeys not updated[/] (Temporal: {error}); `renewals start` passes changes on"
            )
        else:
            synced: dict[str, int] = {}
            for policy, result, reason in await sync_journeys(client, db, report.changed):
                synced[result.value] = synced.get(result.value, 0) + 1
                if reason:
                    err.print(f"{policy.number}: journey refused the change: {reason}", markup=False)
            out.print("running journeys: " + ", ".join(f"{k}: {v}" for k, v in sorted(synced.items())))
    return 0 if report.ok else 1


async def _start(args: argparse.Namespace, settings: Settings, db: Database) -> int:
    from renewals.intake.journeys import Start, start_due_journeys

    horizon = args.horizon_days or settings.intake_horizon_days
    client = await _client(settings)
    with _progress() as progress:
        total, advance = _tracked(progress, f"journeys ending within {horizon} days")
        summary = await start_due_journeys(
            client, db, date.today(), horizon, settings.task_queue, settings.send_window(), total, advance
        )
    for problem in summary.problems:
        err.print(problem, markup=False)
    out.print(summary.line())
    return 1 if summary.counts.get(Start.FAILED.value) else 0


async def _schedule(args: argparse.Namespace, settings: Settings, db: Database) -> int:
    from renewals.intake.daily_run import IntakeRequest
    from renewals.intake.schedule import SCHEDULE_ID, install_schedule

    horizon = args.horizon_days or settings.intake_horizon_days
    at = args.at or settings.intake_schedule_at.strftime("%H:%M")
    hour, _, minute = str(at)[:5].partition(":")
    timezone = args.timezone or settings.intake_schedule_timezone
    request = IntakeRequest(horizon_days=horizon, task_queue=settings.task_queue, timezone=timezone)
    client = await _client(settings)
    result = await install_schedule(client, request, int(hour), int(minute or 0), timezone)
    out.print(
        f"schedule {SCHEDULE_ID} {result}: DailyIntake every day at {at} {timezone}, horizon {horizon} days"
    )
    return 0


# ---- seeing journeys ----------------------------------------------------------------------------


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def list_query(stage: str | None, centre: str | None, agent: str | None, policy: str | None = None) -> str:
    clauses = ["WorkflowType = 'RenewalJourney'"]
    for name, value in (("JourneyStage", stage), ("RenewalCentre", centre), ("AgentId", agent)):
        if value:
            clauses.append(f"{name} = {_quoted(value)}")
    if policy:
        clauses.append(f"PolicyNumber = {_quoted(policy)}")
    return " AND ".join(clauses)


async def _status(args: argparse.Namespace, settings: Settings, db: Database) -> int:
    client = await _client(settings)
    found = [wf async for wf in client.list_workflows(list_query(None, None, None, args.policy))]
    if not found:
        err.print(f"no journey for policy {args.policy}", markup=False)
        return 2
    latest = max(found, key=lambda wf: wf.start_time)
    status = await client.get_workflow_handle(latest.id).query("status", result_type=JourneyStatus)
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
    from renewals import search_attributes as sa

    client = await _client(settings)
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


# ---- operator workbench -------------------------------------------------------------------------


async def _operator(args: argparse.Namespace, settings: Settings, db: Database) -> int:
    from renewals.operators.workbench import Refused, Workbench

    workbench = Workbench(db, await _client(settings))
    try:
        if args.operator_command == "tasks":
            due_by = datetime.now(UTC) if args.due else None
            views = await workbench.tasks(args.centre, include_closed=args.all, due_by=due_by)
            grid = Table(title=f"operator tasks · centre {args.centre}")
            for column in (
                "task",
                "policy",
                "agent (keeps the renewal)",
                "status",
                "operator",
                "due",
                "reason",
            ):
                grid.add_column(column)
            for v in views:
                agent = (
                    f"{v.agent_id} {v.agent_name or ''} {v.agent_phone or ''}".strip() if v.agent_id else "?"
                )
                grid.add_row(
                    str(v.id),
                    v.policy_number,
                    agent,
                    v.status if not v.outcome else f"{v.status}: {v.outcome}",
                    v.operator or "",
                    ("call back " if v.callback_at else "")
                    + v.due_at.astimezone(UTC).isoformat(timespec="minutes"),
                    v.reason + (f" · {v.note}" if v.note else ""),
                )
            out.print(grid)
            return 0
        if args.operator_command == "claim":
            view = await workbench.claim(args.task, args.operator)
            out.print(f"task {view.id} claimed by {view.operator} (agent {view.agent_id} keeps it)")
            return 0
        callback_at = _parse_moment(args.callback_at) if args.callback_at else None
        result = await workbench.record_outcome(
            args.task, OperatorOutcome(args.outcome), args.note, callback_at, args.operator
        )
        out.print(
            f"task {result.task.id}: {args.outcome} — {result.message}; agent {result.task.agent_id} kept"
        )
        return 0
    except Refused as refusal:
        err.print(f"refused: {refusal.reason}", markup=False)
        return 2
    except ValueError as error:
        err.print(f"refused: {error}", markup=False)
        return 2


def _parse_moment(raw: str) -> datetime:
    moment = datetime.fromisoformat(raw)
    if moment.tzinfo is None:
        raise ValueError(f"--callback-at {raw!r} needs a UTC offset, e.g. 2027-03-20T15:00+03:00")
    return moment.astimezone(UTC)


# ---- reports ------------------------------------------------------------------------------------


async def _dashboard(args: argparse.Namespace, settings: Settings, db: Database) -> int:
    from renewals.reports.dashboard import agent_dashboard, dashboard_html, dashboard_table

    items = await agent_dashboard(db)
    out.print(dashboard_table(items))
    if args.html:
        args.html.write_text(dashboard_html(items), encoding="utf-8")
        out.print(f"written {args.html}")
    return 0


async def _funnel(args: argparse.Namespace, settings: Settings, db: Database) -> int:
    from renewals.reports.funnel import funnel_html, funnel_tables, journey_funnel

    funnel = await journey_funnel(db)
    out.print(funnel_tables(funnel))
    if args.html:
        args.html.write_text(funnel_html(funnel), encoding="utf-8")
        out.print(f"written {args.html}")
    return 0


# ---- the HTTP service ---------------------------------------------------------------------------


async def _webhooks(args: argparse.Namespace, settings: Settings, db: Database) -> int:
    import uvicorn

    from renewals.webhooks.app import create_app

    secrets = webhook_secrets(settings)
    if not secrets:
        err.print(
            "[yellow]no webhook secrets configured[/] (RENEWALS_WEBHOOK_SECRETS): every callback gets 401"
        )
    app = create_app(db, await _client(settings), secrets)
    host = args.host or settings.webhooks_host
    port = args.port or settings.webhooks_port
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="info"))
    await server.serve()
    return 0


_COMMANDS: dict[str, Callable[[argparse.Namespace, Settings, Database], Any]] = {
    "import": _import,
    "start": _start,
    "schedule": _schedule,
    "status": _status,
    "list": _list,
    "operator": _operator,
    "dashboard": _dashboard,
    "funnel": _funnel,
    "webhooks": _webhooks,
}


if __name__ == "__main__":
    sys.exit(ops_main(sys.argv[1:]))
