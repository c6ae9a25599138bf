"""`renewals sla ...`: simulate applications on the time-skipping server, the weekly report, and
status changes from the command line.

`sla_main(argv)` is the entry point (`renewals sla simulate FILE`, `renewals sla report --week
2027-W10 [--partner P] [--csv PATH] [--html PATH]`, `renewals sla status ...`). The simulate input and
output shapes are the public contract documented in docs/sla.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from temporalio.api.testservice.v1 import LockTimeSkippingRequest, UnlockTimeSkippingRequest
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.sla import EscalationNotifier, SlaActivities
from renewals.db.database import Database
from renewals.sendwindow import zone
from renewals.sla import search_attributes as sla_sa
from renewals.sla.business_time import BusinessCalendar, Elapsed
from renewals.sla.models import (
    TERMINAL,
    ApplicationInput,
    ApplicationStatus,
    Responsible,
    SlaStatus,
    StatusChange,
    SupportCalendar,
    application_workflow_id,
    transition_error,
)
from renewals.sla.render import print_report, report_csv, report_html
from renewals.sla.report import build_report, week_bounds
from renewals.sla.settings import SlaTargets, get_sla_settings
from renewals.sla.store import load_applications
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
    """A status change the journey refused (an unknown transition, a closed journey)."""


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
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")


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
        _parse_application(raw, index, real_now, calendar)
        for index, raw in enumerate(document["applications"])
    ]
    repeated = [key for key, n in Counter((a.partner, a.id) for a in applications).items() if n > 1]
    if repeated:
        raise InputError(
            f"application {repeated[0][1]}: id: used more than once for partner {repeated[0][0]}"
        )
    return Simulation(calendar=calendar, targets=targets, applications=applications)


def _parse_application(
    raw: Any, index: int, real_now: datetime, calendar: SupportCalendar
) -> SimulatedApplication:
    name = raw.get("id") if isinstance(raw, dict) and raw.get("id") else f"#{index + 1}"
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
        try:
            business.is_open(event.at)
        except ValueError as error:
            raise InputError(f"{where}.at: {error}") from None
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
    return application


def simulation_runs(simulation: Simulation) -> list[SimulationRun]:
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
    return await register_search_attributes(client, namespace, sla_sa.ALL)


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


def render_result(status: ApplicationStatus) -> dict[str, Any]:
    """One application of the public output; times in the calendar's zone, ISO-8601 with offset."""
    tz = zone(status.calendar.timezone)

    def iso(moment: datetime | None) -> str | None:
        # Whole seconds: the simulated activities take milliseconds of server time.
        return None if moment is None else moment.astimezone(tz).replace(microsecond=0).isoformat()

    return {
        "id": status.id,
        "partner": status.partner,
        "status": status.status.value,
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


# ---- status changes -----------------------------------------------------------------------------


async def change_status(
    client: Client, partner: str, application_id: str, change: StatusChange
) -> ApplicationStatus:
    """The partner cabinet's and the CLI's way in: a validated update of the application's journey."""
    workflow_id = application_workflow_id(partner, application_id)
    handle = client.get_workflow_handle_for(PartnerApplication.run, workflow_id)
    try:
        return await handle.execute_update(PartnerApplication.change_status, change)
    except WorkflowUpdateFailedError as error:
        raise StatusRefused(str(error.cause or error)) from None
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            with contextlib.suppress(RPCError):
                described = await handle.describe()
                state = described.status.name.lower() if described.status else "closed"
                raise StatusRefused(
                    f"application {application_id}: its journey has finished ({state}); "
                    f"{change.status.value} is not possible"
                ) from None
            raise ApplicationNotFound(
                f"application {application_id} of partner {partner}: not found (workflow {workflow_id})"
            ) from None
        raise


async def application_status(client: Client, partner: str, application_id: str) -> ApplicationStatus:
    """The journey's query, with clocks computed for the caller's clock (see PartnerApplication.status)."""
    handle = client.get_workflow_handle_for(
        PartnerApplication.run, application_workflow_id(partner, application_id)
    )
    try:
        return await handle.query(PartnerApplication.status, datetime.now(UTC))
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            raise ApplicationNotFound(
                f"application {application_id} of partner {partner}: not found"
            ) from None
        raise


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
    report = build_report(applications, args.week, settings.timezone, args.partner)
    print_report(report)
    if args.csv:
        Path(args.csv).write_text(report_csv(report), encoding="utf-8")
    if args.html:
        Path(args.html).write_text(report_html(report), encoding="utf-8")
    return 0


async def _status_cli(args: argparse.Namespace) -> int:
    from renewals.settings import get_settings
    from worker import connect

    client = await connect(get_settings())
    change = StatusChange(status=SlaStatus(args.to), by=args.by, reason=args.reason)
    try:
        result = await change_status(client, args.partner, args.application, change)
    except (ApplicationNotFound, StatusRefused) as error:
        print(str(error), file=sys.stderr)
        return 2
    print(result.model_dump_json(indent=2))
    return 0


def sla_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="renewals sla", description="Partner issuance SLA")
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
    status = commands.add_parser("status", help="change an application's status (validated)")
    status.add_argument("application")
    status.add_argument("--partner", required=True)
    status.add_argument("--to", required=True, choices=[s.value for s in SlaStatus])
    status.add_argument("--by", required=True, help="who makes the change")
    status.add_argument("--reason", help="why")
    args = parser.parse_args(argv)
    if args.command == "simulate":
        return asyncio.run(_simulate_cli(args.file))
    if args.command == "report":
        return asyncio.run(_report_cli(args))
    return asyncio.run(_status_cli(args))
