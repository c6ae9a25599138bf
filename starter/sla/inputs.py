"""The SLA commands' inputs, validated before anything runs, the first problem named in one line
(InputError): `sla simulate`'s document (docs/sla.md) and the driver runs it becomes, and `sla
submit`'s application (a JSON file or flags)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from renewals.sla.business_time import BusinessCalendar, Elapsed
from renewals.sla.clocks import calendar_problem
from renewals.sla.models import (
    TERMINAL,
    ApplicationInput,
    ClockSpec,
    Responsible,
    SlaStatus,
    StatusChange,
    SupportCalendar,
    application_workflow_id,
    transition_error,
)
from renewals.sla.targets import SlaTargets, get_sla_settings
from starter.inputs import InputError, first_error
from workflows.sla_simulation import SimulationRun, TimedChange


class SimulatedEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: datetime
    status: SlaStatus
    by: str = "partner"
    reason: str | None = None


class ApplicationFields(BaseModel):
    """What names an application, and who answers for it: common to both inputs."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    partner: str = Field(min_length=1)
    urgent: bool = False
    responsible: Responsible = Responsible()


class SimulatedApplication(ApplicationFields):
    events: list[SimulatedEvent] = Field(min_length=1)


class Simulation(BaseModel):
    calendar: SupportCalendar
    targets: SlaTargets
    applications: list[SimulatedApplication]


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
        raise InputError(f"calendar: {first_error(error)}") from None
    try:
        targets = (
            SlaTargets.model_validate(document["targets"]) if "targets" in document else settings.targets()
        )
    except ValidationError as error:
        raise InputError(f"targets: {first_error(error)}") from None
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
        raise InputError(f"application {name}: {first_error(error)}") from None
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


class Submission(ApplicationFields):
    """`renewals sla submit`'s input (a JSON file or flags); the rest comes from the SLA settings."""

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
        raise InputError(f"application {name}: {first_error(error)}") from None
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
