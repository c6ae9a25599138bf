"""`renewals sla ...`: simulate applications on the time-skipping server, the weekly report, and
the operations on live journeys from the command line.

`sla_main(argv)` is the entry point (starter/cli.py hands every `renewals sla ...` here):
`simulate FILE`, `report --week 2027-W10 [--partner P] [--csv PATH] [--html PATH]`, `submit FILE |
--id ID --partner P`, `status ID [--partner P] [--to STATUS --by NAME]`, `answer ID --who NAME
--answer TEXT`. `sla_command(argv, client)` is the same on an existing client (tests). The simulate
input and output shapes are the public contract documented in docs/sla.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from temporalio.api.testservice.v1 import LockTimeSkippingRequest, UnlockTimeSkippingRequest
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import FailureError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.sla import EscalationNotifier, SlaActivities
from renewals import search_attributes as sa
from renewals.db.database import Database
from renewals.sendwindow import zone
from renewals.sla.business_time import BusinessCalendar, Elapsed
from renewals.sla.clocks import calendar_problem
from renewals.sla.models import (
    TERMINAL,
    ApplicationInput,
    ApplicationStatus,
    ClockSpec,
    EscalationAnswer,
    Responsible,
    SlaStatus,
    StatusChange,
    SupportCalendar,
    application_workflow_id,
    transition_error,
)
from renewals.sla.render import print_report, report_csv, report_html
from renewals.sla.report import build_report, week_bounds
from renewals.sla.snapshots import load_applications
from renewals.sla.targets import SlaTargets, get_sla_settings
from starter.binaries import find_binary
from starter.runtime import cli_runtime
from starter.temporal_setup import register_search_attributes
from worker import SANDBOX
from workflows.sla import PartnerApplication, SimulateApplication, SimulationRun, TimedChange

TASK_QUEUE = "sla-simulate"
SLA_WORKFLOWS: list[type] = [PartnerApplication]


class InputError(ValueError):
    """A malformed simulate input: one line naming the application and the field."""


class ApplicationNotFound(LookupError):
    """A status change for an application that has no journey."""


class StatusRefused(ValueError):
    """A status change or an answer the journey refused (an unknown transition, a closed journey,
    nothing awaiting an answer)."""


# ---- input --------------------------------------------------------------------------------------


class SimulatedEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: datetime
    status: SlaStatus
    by: str = "partner"
    reason: str | None = None


class SimulatedApplication(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    partner: str = Field(min_length=1)
    urgent: bool = False
    responsible: Responsible = Responsible()
    events: list[SimulatedEvent] = Field(min_length=1)


class Simulation(BaseModel):
    calendar: SupportCalendar
    targets: SlaTargets
    applications: list[SimulatedApplication]


def _field(loc: tuple[int | str, ...]) -> str:
    """pydantic's location as `events[1].at`; `(root)` for the object itself."""
    return (
        "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".") or "(root)"
    )


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    return f"{_field(first['loc'])}: {first['msg']}"


def parse_simulation(document: Any, real_now: datetime) -> Simulation:
    """Validate the whole input; the first problem raises InputError naming the application and field."""
    if not isinstance(document, dict) or not isinstance(document.get("applications"), list):
        raise InputError('input: expected {"calendar": {...}, "applications": [...]}')
    unknown = set(document) - {"calendar", "targets", "applications"}
    if unknown:
        raise InputError(f"input: {sorted(unknown)[0]}: unknown field")
    settings = get_sla_settings()
    try:
        calendar = SupportCalendar.model_validate(
            document.get("calendar") or settings.calendar().model_dump()
        )
    except ValidationError as error:
        raise InputError(f"calendar: {_first_error(error)}") from None
    try:
        targets = (
            SlaTargets.model_validate(document["targets"]) if "targets" in document else settings.targets()
        )
    except ValidationError as error:
        raise InputError(f"targets: {_first_error(error)}") from None
    applications = [
        _parse_application(raw, index, real_now, calendar, targets.clocks())
        for index, raw in enumerate(document["applications"])
    ]
    _refuse_colliding_ids(applications)
    return Simulation(calendar=calendar, targets=targets, applications=applications)


def _refuse_colliding_ids(applications: list[SimulatedApplication]) -> None:
    """Two applications whose workflow ids normalise alike (`R1`/`r1`, `realty 1`/`realty-1`) would
    be one journey: refuse the second, naming both."""
    first: dict[str, SimulatedApplication] = {}
    for application in applications:
        workflow_id = application_workflow_id(application.partner, application.id)
        earlier = first.setdefault(workflow_id, application)
        if earlier is application:
            continue
        same = (earlier.partner, earlier.id) == (application.partner, application.id)
        raise InputError(
            f"application {application.id}: id: used more than once for partner {application.partner}"
            if same
            else f"application {application.id}: id: collides with application {earlier.id} of partner "
            f"{earlier.partner} (both are workflow {workflow_id})"
        )


def _parse_application(
    raw: Any, index: int, real_now: datetime, calendar: SupportCalendar, clocks: list[ClockSpec]
) -> SimulatedApplication:
    if not isinstance(raw, dict):
        raise InputError(f"application #{index + 1}: (root): must be an object")
    name = str(raw["id"]) if raw.get("id") else f"#{index + 1}"
    try:
        application = SimulatedApplication.model_validate(raw)
    except ValidationError as error:
        raise InputError(f"application {name}: {_first_error(error)}") from None
    previous: SimulatedEvent | None = None
    business = BusinessCalendar(calendar)
    for position, event in enumerate(application.events):
        where = f"application {name}: events[{position}]"
        if event.at.tzinfo is None:
            raise InputError(f"{where}.at: needs a UTC offset")
        if event.at < real_now:
            raise InputError(f"{where}.at: {event.at.isoformat()} is in the past")
        problem = calendar_problem(clocks, event.status, event.at, business)
        if problem is not None:
            raise InputError(f"{where}.at: {problem}")
        if previous is None:
            if event.status is not SlaStatus.SUBMITTED:
                raise InputError(
                    f"{where}.status: the first event must be submitted, not {event.status.value}"
                )
        else:
            if event.at < previous.at:
                raise InputError(f"{where}.at: earlier than the event before it")
            refusal = transition_error(previous.status, event.status)
            if refusal is not None:
                raise InputError(f"{where}.status: {refusal}")
        previous = event
    last = len(application.events) - 1
    if application.events[last].status not in TERMINAL:  # it runs on until every clock could breach
        for status in dict.fromkeys(spec.starts_at for spec in clocks):
            problem = calendar_problem(clocks, status, application.events[last].at, business)
            if problem is not None:
                raise InputError(f"application {name}: events[{last}].at: {problem}")
    return application


def simulation_runs(simulation: Simulation) -> list[SimulationRun]:
    """One driver run per application; the horizon is past every breach a clock could still reach."""
    clocks = simulation.targets.clocks()
    business = BusinessCalendar(simulation.calendar)
    runs = []
    for application in simulation.applications:
        first, last = application.events[0], application.events[-1]
        horizon = last.at
        if last.status not in TERMINAL:  # past every breach a clock still running could reach
            horizon = max(
                Elapsed(business, spec.business_time).add(last.at, timedelta(minutes=spec.limit_minutes))
                for spec in clocks
            ) + timedelta(minutes=1)
        runs.append(
            SimulationRun(
                workflow_id=application_workflow_id(application.partner, application.id),
                application=ApplicationInput(
                    id=application.id,
                    partner=application.partner,
                    urgent=application.urgent,
                    calendar=simulation.calendar,
                    clocks=clocks,
                    responsible=application.responsible,
                    submitted_by=first.by,
                    submitted_at=first.at,
                ),
                submitted_at=first.at,
                changes=[
                    TimedChange(at=e.at, change=StatusChange(status=e.status, by=e.by, reason=e.reason))
                    for e in application.events[1:]
                ],
                horizon=horizon,
            )
        )
    return runs


# ---- running ------------------------------------------------------------------------------------


async def register_sla_search_attributes(client: Client, namespace: str = "default") -> list[str]:
    """Add the SLA search attributes the namespace lacks (the test server cannot list: add all)."""
    return await register_search_attributes(client, namespace, sa.SLA)


def sla_worker(client: Client, task_queue: str, activities: SlaActivities, fail_fast: bool = True) -> Worker:
    """A worker for application journeys and their simulation driver (tests and `sla simulate`)."""
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[*SLA_WORKFLOWS, SimulateApplication],
        activities=activities.all(),
        workflow_runner=SANDBOX,
        workflow_failure_exception_types=[Exception] if fail_fast else [],
    )


async def run_simulation(
    env: WorkflowEnvironment,
    runs: list[SimulationRun],
    activities: SlaActivities,
    task_queue: str = TASK_QUEUE,
) -> list[ApplicationStatus]:
    """All runs side by side on the environment's clock; time skips once everything is started."""
    await register_sla_search_attributes(env.client)
    async with sla_worker(env.client, task_queue, activities):
        with env.auto_time_skipping_disabled():
            handles = [
                await env.client.start_workflow(
                    SimulateApplication.run, run, id=f"simulate-{run.workflow_id}", task_queue=task_queue
                )
                for run in runs
            ]
            await env.client.test_service.unlock_time_skipping(UnlockTimeSkippingRequest())
            try:
                return [await handle.result() for handle in handles]
            finally:
                await env.client.test_service.lock_time_skipping(LockTimeSkippingRequest())


async def simulate(
    simulation: Simulation, database_url: str | None = None, notifier: EscalationNotifier | None = None
) -> list[ApplicationStatus]:
    """A fresh time-skipping server; snapshots go to `database_url` or a scratch SQLite file."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find_binary("temporal-test-server"),
        data_converter=pydantic_data_converter,
        runtime=cli_runtime(),
    )
    scratch = tempfile.TemporaryDirectory(prefix="renewals-sla-")
    db = Database(database_url or f"sqlite+aiosqlite:///{scratch.name}/sla.db")
    try:
        await db.migrate()
        return await run_simulation(env, simulation_runs(simulation), SlaActivities(db, notifier))
    finally:
        await db.dispose()
        await env.shutdown()
        scratch.cleanup()


RESULT_KEYS = ("id", "clocks", "escalations", "time_in_status")
CLOCK_KEYS = ("name", "started", "due", "stopped", "breached")
ESCALATION_KEYS = ("at", "clock", "step")


def render_result(status: ApplicationStatus) -> dict[str, Any]:
    """One application of the public output, exactly RESULT_KEYS (the query has the rest); times in
    the calendar's zone, ISO-8601 with offset. Escalations include the warnings (step "warning")."""
    tz = zone(status.calendar.timezone)

    def iso(moment: datetime | None) -> str | None:
        # Whole seconds: the simulated activities take milliseconds of server time.
        return None if moment is None else moment.astimezone(tz).replace(microsecond=0).isoformat()

    return {
        "id": status.id,
        "clocks": [
            {
                "name": clock.name,
                "started": iso(clock.started),
                "due": iso(clock.due),
                "stopped": iso(clock.stopped),
                "breached": clock.breached,
            }
            for clock in status.clocks
        ],
        "escalations": [
            {"at": iso(step.at), "clock": step.clock, "step": step.step.value} for step in status.escalations
        ],
        "time_in_status": status.time_in_status,
    }


# ---- operations on live journeys ---------------------------------------------------------------


JourneyHandle = WorkflowHandle[PartnerApplication, ApplicationStatus]


class Target(BaseModel):
    """Which journey a command means, and how its messages name it."""

    model_config = ConfigDict(frozen=True)

    workflow_id: str
    label: str


def target(application: str, partner: str | None = None) -> Target:
    """`ID --partner P` names an application; a bare ID must be its workflow id (`sla-...`, as
    `submit` prints it), because the partner is part of the id."""
    if partner is not None:
        return Target(
            workflow_id=application_workflow_id(partner, application),
            label=f"application {application} of partner {partner}",
        )
    if application.startswith("sla-"):
        return Target(workflow_id=application, label=f"application {application}")
    raise InputError(
        f"application {application}: give --partner P, or the workflow id (sla-<partner>-<application>)"
    )


async def _updating(
    client: Client, to: Target, what: str, call: Callable[[JourneyHandle], Awaitable[ApplicationStatus]]
) -> ApplicationStatus:
    """Run a validated update; refusals and missing or finished journeys become one-line errors."""
    handle = client.get_workflow_handle_for(PartnerApplication.run, to.workflow_id)
    try:
        return await call(handle)
    except WorkflowUpdateFailedError as error:
        # The validator's reason, without the "ValueError: " its failure's type would prefix.
        reason = error.cause.message if isinstance(error.cause, FailureError) else str(error)
        raise StatusRefused(reason) from None
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            with contextlib.suppress(RPCError):
                described = await handle.describe()
                state = described.status.name.lower() if described.status else "closed"
                raise StatusRefused(
                    f"{to.label}: its journey has finished ({state}); {what} is not possible"
                ) from None
            raise ApplicationNotFound(f"{to.label}: not found (workflow {to.workflow_id})") from None
        raise


async def change_status_of(client: Client, to: Target, change: StatusChange) -> ApplicationStatus:
    return await _updating(
        client,
        to,
        change.status.value,
        lambda handle: handle.execute_update(PartnerApplication.change_status, change),
    )


async def change_status(
    client: Client, partner: str, application_id: str, change: StatusChange
) -> ApplicationStatus:
    """The partner cabinet's and the CLI's way in: a validated update of the application's journey."""
    return await change_status_of(client, target(application_id, partner), change)


async def record_answer(client: Client, to: Target, answer: EscalationAnswer) -> ApplicationStatus:
    """Checklist step 4 by an operator: the answer to the oldest awaiting escalation (or `clock`'s)."""
    return await _updating(
        client,
        to,
        "an answer",
        lambda handle: handle.execute_update(PartnerApplication.record_answer, answer),
    )


async def query_status(client: Client, to: Target) -> ApplicationStatus:
    """The journey's query, with clocks computed for the caller's clock (see PartnerApplication.status)."""
    handle = client.get_workflow_handle_for(PartnerApplication.run, to.workflow_id)
    try:
        return await handle.query(PartnerApplication.status, datetime.now(UTC))
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            raise ApplicationNotFound(f"{to.label}: not found") from None
        raise


async def application_status(client: Client, partner: str, application_id: str) -> ApplicationStatus:
    return await query_status(client, target(application_id, partner))


class Submission(BaseModel):
    """`renewals sla submit`'s input (a JSON file or flags); the rest comes from the SLA settings."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    partner: str = Field(min_length=1)
    urgent: bool = False
    responsible: Responsible = Responsible()
    by: str = "partner"
    submitted_at: datetime | None = None


def submission_input(document: Any, now: datetime) -> ApplicationInput:
    """Validate a submission into the journey's input; InputError names the application and field.
    The calendar must cover the submission and its clocks, so the journey never fails on it."""
    if not isinstance(document, dict):
        raise InputError("application: (root): must be an object")
    name = str(document["id"]) if document.get("id") else "(no id)"
    try:
        submission = Submission.model_validate(document)
    except ValidationError as error:
        raise InputError(f"application {name}: {_first_error(error)}") from None
    if submission.submitted_at is not None and submission.submitted_at.tzinfo is None:
        raise InputError(f"application {name}: submitted_at: needs a UTC offset")
    settings = get_sla_settings()
    calendar, clocks = settings.calendar(), settings.targets().clocks()
    moment = min(submission.submitted_at or now, now)  # the journey clamps a future moment to now
    problem = calendar_problem(clocks, SlaStatus.SUBMITTED, moment, BusinessCalendar(calendar))
    if problem is not None:
        raise InputError(f"application {name}: submitted_at: {problem}")
    return ApplicationInput(
        id=submission.id,
        partner=submission.partner,
        urgent=submission.urgent,
        calendar=calendar,
        clocks=clocks,
        responsible=submission.responsible,
        submitted_by=submission.by,
        submitted_at=submission.submitted_at,
    )


async def start_application(client: Client, application: ApplicationInput, task_queue: str) -> str:
    """Start the journey at submission; a repeated start attaches to the running journey."""
    workflow_id = application_workflow_id(application.partner, application.id)
    await client.start_workflow(
        PartnerApplication.run,
        application,
        id=workflow_id,
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        static_summary=f"Application {application.id} ({application.partner})",
    )
    return workflow_id


# ---- the command --------------------------------------------------------------------------------


async def _simulate_cli(path: str) -> int:
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        print(f"input: cannot read {path}: {error}", file=sys.stderr)
        return 2
    try:
        simulation = parse_simulation(document, datetime.now(UTC))
    except InputError as error:
        print(str(error), file=sys.stderr)
        return 2
    results = await simulate(simulation)
    json.dump({"results": [render_result(r) for r in results]}, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")
    return 0


async def _report_cli(args: argparse.Namespace) -> int:
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
    try:
        return json.loads(Path(args.file).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise InputError(f"input: cannot read {args.file}: {error}") from None


async def _connect() -> Client:
    from renewals.settings import get_settings
    from worker import connect

    return await connect(get_settings())


async def _journey_cli(args: argparse.Namespace, client: Client | None) -> int:
    """submit, status and answer: the commands that talk to a running Temporal."""
    if args.command == "submit":
        from renewals.settings import get_settings

        application = submission_input(_submission_document(args), datetime.now(UTC))
        client = client or await _connect()
        workflow_id = await start_application(
            client, application, args.task_queue or get_settings().task_queue
        )
        print(json.dumps({"workflow_id": workflow_id, "id": application.id, "partner": application.partner}))
        return 0
    to = target(args.application, args.partner)
    if args.command == "answer":
        answer = EscalationAnswer(clock=args.clock, by=args.who, text=args.answer)
        client = client or await _connect()
        result = await record_answer(client, to, answer)
    elif args.to is not None:
        if not args.by:
            raise InputError("status: --to needs --by (who makes the change)")
        change = StatusChange(status=SlaStatus(args.to), by=args.by, reason=args.reason)
        client = client or await _connect()
        result = await change_status_of(client, to, change)
    else:
        client = client or await _connect()
        result = await query_status(client, to)
    print(result.model_dump_json(indent=2))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="renewals sla", description="Partner issuance SLA (docs/sla.md)")
    commands = parser.add_subparsers(dest="command", required=True)
    simulate_cmd = commands.add_parser(
        "simulate", help="run applications on the time-skipping server, print JSON"
    )
    simulate_cmd.add_argument("file", help="APPLICATIONS.json")
    report = commands.add_parser("report", help="the weekly report: terminal table, CSV, HTML")
    report.add_argument("--week", required=True, help="ISO week, e.g. 2027-W10")
    report.add_argument("--partner", help="one partner only")
    report.add_argument("--csv", help="write the report as CSV to PATH")
    report.add_argument("--html", help="write the report as a static HTML page to PATH")
    report.add_argument("--database", help="database URL (default: RENEWALS_DATABASE_URL)")
    submit = commands.add_parser("submit", help="start an application's journey from FILE.json or flags")
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
    status = commands.add_parser(
        "status", help="print an application's journey as JSON, or change its status"
    )
    status.add_argument("application", help="the application id with --partner, or the workflow id")
    status.add_argument("--partner")
    status.add_argument("--to", choices=[s.value for s in SlaStatus], help="change the status (validated)")
    status.add_argument("--by", help="who makes the change")
    status.add_argument("--reason", help="why")
    answer = commands.add_parser("answer", help="record an operator's answer (checklist step 4)")
    answer.add_argument("application", help="the application id with --partner, or the workflow id")
    answer.add_argument("--partner")
    answer.add_argument("--who", required=True, help="who answered")
    answer.add_argument("--answer", required=True, help="what they said")
    answer.add_argument("--clock", help="the breached clock (default: the oldest awaiting an answer)")
    return parser


async def sla_command(argv: list[str], client: Client | None = None) -> int:
    """`renewals sla ...` on `client` (default: connect with the settings); 2 on a refusal."""
    args = _parser().parse_args(argv)
    if args.command == "simulate":
        return await _simulate_cli(args.file)
    if args.command == "report":
        return await _report_cli(args)
    try:
        return await _journey_cli(args, client)
    except (InputError, ApplicationNotFound, StatusRefused) as error:
        print(str(error), file=sys.stderr)
        return 2


def sla_main(argv: list[str]) -> int:
    return asyncio.run(sla_command(argv))
