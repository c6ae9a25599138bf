"""`renewals sla ...`: simulate applications on the time-skipping server, the weekly report, and the
operations on live journeys from the command line.

`simulate FILE`, `report --week 2027-W10 [--partner P] [--csv PATH] [--html PATH]`, `submit FILE |
--id ID --partner P`, `status ID [--partner P] [--to STATUS --by NAME]`, `answer ID --who NAME
--answer TEXT`. `sla_command(argv, client)` runs the same on an existing client (tests). Exit codes:
0 done, 2 unusable input or a refusal (one line on stderr). The simulate input and output shapes are
the public contract documented in docs/sla.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from renewals.sla.models import SlaStatus
from starter.commands import Commands
from starter.inputs import InputError, read_json

if TYPE_CHECKING:
    from temporalio.client import Client

# An SLA command: the parsed arguments and the client to use (None: connect with the settings).
SlaHandler = Callable[[argparse.Namespace, "Client | None"], Awaitable[int]]


def register(commands: Commands) -> None:
    sla = commands.add_parser(
        "sla",
        help="partner issuance SLA: simulate, report, status (see `renewals sla -h`)",
        description="Partner issuance SLA (docs/sla.md)",
    )
    sla_commands = sla.add_subparsers(dest="sla_command", required=True)

    simulate = sla_commands.add_parser(
        "simulate", help="run applications on the time-skipping server, print JSON"
    )
    simulate.add_argument("file", help="APPLICATIONS.json")
    _handled_by(simulate, _simulate)

    report = sla_commands.add_parser("report", help="the weekly report: terminal table, CSV, HTML")
    report.add_argument("--week", required=True, help="ISO week, e.g. 2027-W10")
    report.add_argument("--partner", help="one partner only")
    report.add_argument("--csv", help="write the report as CSV to PATH")
    report.add_argument("--html", help="write the report as a static HTML page to PATH")
    report.add_argument("--database", help="database URL (default: RENEWALS_DATABASE_URL)")
    _handled_by(report, _report)

    submit = sla_commands.add_parser("submit", help="start an application's journey from FILE.json or flags")
    submit.add_argument(
        "file", nargs="?", help='{"id": ..., "partner": ..., "urgent": ..., "responsible": {...}}'
    )
    submit.add_argument("--id")
    submit.add_argument("--partner")
    submit.add_argument("--urgent", action="store_true")
    submit.add_argument("--by", help="who submits (default: partner)")
    submit.add_argument("--submitted-at", help="ISO-8601 with offset (default: now)")
    submit.add_argument("--client-contact", help="responsible for answering the client")
    submit.add_argument("--documents", help="responsible for collecting the documents")
    submit.add_argument("--payment", help="responsible for taking the payment")
    submit.add_argument("--task-queue", help="default: RENEWALS_TASK_QUEUE")
    _handled_by(submit, _submit)

    status = sla_commands.add_parser(
        "status", help="print an application's journey as JSON, or change its status"
    )
    status.add_argument("application", help="the application id with --partner, or the workflow id")
    status.add_argument("--partner")
    status.add_argument("--to", choices=[s.value for s in SlaStatus], help="change the status (validated)")
    status.add_argument("--by", help="who makes the change")
    status.add_argument("--reason", help="why")
    _handled_by(status, _status)

    answer = sla_commands.add_parser("answer", help="record an operator's answer (checklist step 4)")
    answer.add_argument("application", help="the application id with --partner, or the workflow id")
    answer.add_argument("--partner")
    answer.add_argument("--who", required=True, help="who answered")
    answer.add_argument("--answer", required=True, help="what they said")
    answer.add_argument("--clock", help="the breached clock (default: the oldest awaiting an answer)")
    _handled_by(answer, _answer)


def _handled_by(parser: argparse.ArgumentParser, handler: SlaHandler) -> None:
    parser.set_defaults(handler=lambda args: asyncio.run(_run(args)), sla_handler=handler)


async def _run(args: argparse.Namespace, client: Client | None = None) -> int:
    from renewals.temporal.connection import TemporalTimeout
    from starter.sla.operations import ApplicationNotFound, StatusRefused

    try:
        code: int = await args.sla_handler(args, client)
        return code
    except (InputError, ApplicationNotFound, StatusRefused) as error:
        print(str(error), file=sys.stderr)
        return 2
    except TemporalTimeout as timeout:
        print(f"sla {args.sla_command}: {timeout}", file=sys.stderr)
        return 2


async def sla_command(argv: list[str], client: Client | None = None) -> int:
    """`renewals sla ...` on `client` (default: connect with the settings); 2 on a refusal."""
    from starter.cli import build_parser

    return await _run(build_parser().parse_args(["sla", *argv]), client)


# ---- simulate and report ------------------------------------------------------------------------


async def _simulate(args: argparse.Namespace, client: Client | None) -> int:
    from starter.inputs import simulate_command
    from starter.sla.inputs import parse_simulation
    from starter.sla.simulate import simulate_results

    return await simulate_command(args.file, parse_simulation, simulate_results)


async def _report(args: argparse.Namespace, client: Client | None) -> int:
    from renewals.db.database import Database
    from renewals.sla.render import print_report, report_csv, report_html
    from renewals.sla.report import build_report, week_bounds
    from renewals.sla.snapshots import load_applications
    from renewals.sla.targets import get_sla_settings

    settings = get_sla_settings()
    try:
        start, end = week_bounds(args.week, settings.timezone)
    except ValueError as error:
        print(str(error), file=sys.stderr)
        return 2
    if args.database is None:
        from renewals.settings import get_settings

        args.database = get_settings().database_url
    db = Database(args.database)
    try:
        await db.migrate()
        applications = await load_applications(db, start, end, args.partner)
    finally:
        await db.dispose()
    report = build_report(applications, args.week, settings.timezone, args.partner, now=datetime.now(UTC))
    print_report(report)
    if args.csv:
        Path(args.csv).write_text(report_csv(report), encoding="utf-8")
    if args.html:
        Path(args.html).write_text(report_html(report), encoding="utf-8")
    return 0


# ---- live journeys ------------------------------------------------------------------------------


async def _connect() -> Client:
    from renewals.settings import get_settings
    from renewals.temporal.connection import connect

    settings = get_settings()
    return await connect(settings, settings.temporal_call_timeout_seconds)


def _submission_document(args: argparse.Namespace) -> Any:
    flags = {
        "id": args.id,
        "partner": args.partner,
        "urgent": args.urgent or None,
        "by": args.by,
        "submitted_at": args.submitted_at,
    }
    people = {"client_contact": args.client_contact, "documents": args.documents, "payment": args.payment}
    given = {key: value for key, value in flags.items() if value is not None}
    if any(people.values()):
        given["responsible"] = {key: value for key, value in people.items() if value is not None}
    if args.file is None:
        return given
    if given:
        raise InputError("submit: give FILE or the flags (--id, --partner, ...), not both")
    return read_json(args.file)


async def _submit(args: argparse.Namespace, client: Client | None) -> int:
    from renewals.settings import get_settings
    from starter.sla.inputs import submission_input
    from starter.sla.operations import start_application

    application = submission_input(_submission_document(args), datetime.now(UTC))
    client = client or await _connect()
    workflow_id = await start_application(client, application, args.task_queue or get_settings().task_queue)
    print(json.dumps({"workflow_id": workflow_id, "id": application.id, "partner": application.partner}))
    return 0


async def _status(args: argparse.Namespace, client: Client | None) -> int:
    from renewals.sla.models import ApplicationStatus, StatusChange
    from starter.sla.operations import change_status_of, query_status, target

    to = target(args.application, args.partner)
    result: ApplicationStatus
    if args.to is not None:
        if not args.by:
            raise InputError("status: --to needs --by (who makes the change)")
        change = StatusChange(status=SlaStatus(args.to), by=args.by, reason=args.reason)
        result = await change_status_of(client or await _connect(), to, change)
    else:
        result = await query_status(client or await _connect(), to)
    print(result.model_dump_json(indent=2))
    return 0


async def _answer(args: argparse.Namespace, client: Client | None) -> int:
    from renewals.sla.models import EscalationAnswer
    from starter.sla.operations import record_answer, target

    to = target(args.application, args.partner)
    answer = EscalationAnswer(clock=args.clock, by=args.who, text=args.answer)
    result = await record_answer(client or await _connect(), to, answer)
    print(result.model_dump_json(indent=2))
    return 0
