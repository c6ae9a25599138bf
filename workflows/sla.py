"""PartnerApplication: one durable journey per realtor application, with business-hours SLA clocks.

Status changes arrive as the `change_status` update (validated: a refused move never enters history)
or the `status_changed` signal (a refused move is kept in `rejected`). Each change stops and starts
clocks (`renewals.sla.targets.SlaTargets`), and the journey sleeps until the next warning or breach
moment. A warning notifies the stage's responsible person (an urgent application: the urgent line).
A breach runs the seed's escalation checklist as a tracked sequence of activities and one awaited
operator answer. The report's snapshot is stored after every change of the journey's state.
SimulateApplication drives a journey from a script on the server's clock.

Determinism: time only from `workflow.now()`, I/O only in activities (called by name). Journeys
started before the `sla-v2` patch keep their old command sequence (see `SLA_V2`).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from renewals import search_attributes as sa
    from renewals.sendwindow import zone
    from renewals.sla.business_time import BusinessCalendar
    from renewals.sla.clocks import ClockRun, calendar_problem, start_clock, view
    from renewals.sla.models import (
        DUTY_OF_STATUS,
        PARTNER_CHANNEL,
        TERMINAL,
        ApplicationInput,
        ApplicationStatus,
        CloseRequest,
        EscalationAnswer,
        EscalationRequest,
        EscalationStep,
        EscalationStepName,
        RejectedChange,
        SlaStatus,
        StatusChange,
        StatusPeriod,
        StepFinding,
        transition_error,
    )

QUICK_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))
ACTIVITY_TIMEOUT = timedelta(seconds=30)

# The `sla-v2` patch: the warning is a notification activity; an urgent application's notices use the
# urgent channel; the snapshot is stored after every warning, breach and checklist step (not only
# status changes); a breach is checked just after `due` (an event exactly at `due` is inside the SLA)
# and also caught when a change stops a clock that already ran past `due`; a repeated breach raises
# the process flag right after steps 1–3 instead of after step 4's answer, and the urgent reaction
# clock does not count towards "repeated". Journeys started before it run the old path to the end.
SLA_V2 = "sla-v2"

_AUTOMATIC_STEPS = (
    (EscalationStepName.CHECK_DATA_AND_PAYMENT, "sla_check_data_and_payment"),
    (EscalationStepName.LOCATE_BLOCKER, "sla_locate_blocker"),
    (EscalationStepName.HAND_OVER, "sla_hand_over"),
)


@workflow.defn(name="PartnerApplication")
class PartnerApplication:
    @workflow.init
    def __init__(self, application: ApplicationInput) -> None:
        self._app = application
        self._calendar = BusinessCalendar(application.calendar)
        self._id = workflow.info().workflow_id
        now = _clamp(application.submitted_at, None, workflow.now())
        self._status = SlaStatus.SUBMITTED
        self._periods = [StatusPeriod(status=SlaStatus.SUBMITTED, entered=now, by=application.submitted_by)]
        self._clocks: list[ClockRun] = []
        self._escalations: list[EscalationStep] = []
        self._rejected: list[RejectedChange] = []
        self._changes = 0
        self._breaches = 0
        self._flag = False
        self._closed: str | None = None
        self._escalating: list[asyncio.Task[None]] = []
        self._revision = 0  # every change of the state the snapshot shows
        self._v2 = False  # decided by `workflow.patched` at the start of `run`
        # A submission the calendar cannot count fails the run cleanly (starters check it first).
        self._invalid = calendar_problem(application.clocks, SlaStatus.SUBMITTED, now, self._calendar)
        if self._invalid is None:
            self._start_clocks(SlaStatus.SUBMITTED, now)

    # ---- the journey ---------------------------------------------------------------------------

    @workflow.run
    async def run(self, application: ApplicationInput) -> ApplicationStatus:
        self._v2 = workflow.patched(SLA_V2)
        if self._invalid is not None:
            raise ApplicationError(
                f"application {application.id}: {self._invalid}",
                type="CalendarNotCovered",
                non_retryable=True,
            )
        workflow.upsert_search_attributes(
            [
                sa.SLA_STATUS.value_set(self._status.value),
                sa.SLA_PARTNER.value_set(application.partner),
                sa.SLA_URGENT.value_set(application.urgent),
                sa.SLA_BREACHED.value_set(False),
            ]
        )
        self._publish()
        recorded = -1
        while True:
            self._fire_due(workflow.now())
            if self._done:
                break
            # Keep the report's store current: after every state change (v1: status changes only).
            if recorded != self._mark():
                recorded = self._mark()
                await self._record()
                continue
            await self._sleep_until_next_moment()
        await asyncio.gather(*self._escalating)
        await self._record()
        return self.status()

    @property
    def _done(self) -> bool:
        return self._status in TERMINAL or self._closed is not None

    async def _sleep_until_next_moment(self) -> None:
        """Until the next warning or breach, or until a status change re-plans the clocks."""
        seen = self._mark()
        pending = [
            (moment, clock) for clock in self._clocks if (moment := clock.next_moment(self._v2)) is not None
        ]

        def changed() -> bool:
            return self._mark() != seen or self._closed is not None

        if not pending:
            await workflow.wait_condition(changed)
            return
        moment, clock = min(pending, key=lambda item: item[0])
        kind = "warning" if moment == clock.warn_at and clock.warned is None else "breach"
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                changed,
                timeout=max(moment - workflow.now(), timedelta(0)),
                timeout_summary=f"{clock.spec.name} {kind} at {self._local(moment):%d.%m %H:%M}",
            )

    def _mark(self) -> int:
        """What wakes the journey: any state change (v2), status changes only (v1)."""
        return self._revision if self._v2 else self._changes

    def _touch(self) -> None:
        self._revision += 1
        self._publish()

    def _fire_due(self, now: datetime) -> None:
        if self._v2:
            self._fire_due_v2(now)
            return
        for clock in self._clocks:
            if not clock.running:
                continue
            if clock.warn_at is not None and clock.warned is None and clock.warn_at <= now:
                clock.warned = clock.warn_at
                self._publish()
            if clock.breached_at is None and clock.due <= now:
                clock.breached_at = clock.due
                self._breaches += 1
                workflow.upsert_search_attributes([sa.SLA_BREACHED.value_set(True)])
                self._escalating.append(asyncio.create_task(self._escalate(clock, self._breaches)))
                self._publish()

    def _fire_due_v2(self, now: datetime) -> None:
        for clock in self._clocks:
            if (
                clock.running
                and clock.warn_at is not None
                and clock.warned is None
                and clock.warn_at <= now
                and clock.warn_at < clock.due
                and not clock.overran(now)
            ):
                clock.warned = clock.warn_at
                self._escalating.append(asyncio.create_task(self._warn(clock)))
                self._touch()
            if clock.overran(now):  # still running after `due`, or stopped after it
                clock.breached_at = clock.due
                self._breaches += 1
                # The urgent reaction clock runs from the same submission as the calculation clock:
                # a late first reaction and a late calculation are one slow start, not a repeat.
                process_breaches = sum(
                    1 for c in self._clocks if c.breached_at is not None and not c.spec.urgent_only
                )
                repeated = not clock.spec.urgent_only and process_breaches >= 2
                workflow.upsert_search_attributes([sa.SLA_BREACHED.value_set(True)])
                self._escalating.append(
                    asyncio.create_task(self._escalate_v2(clock, self._breaches, repeated))
                )
                self._touch()

    async def _warn(self, clock: ClockRun) -> None:
        """The warning before the breach, as a notice to whoever can still keep the deadline."""
        request = self._escalation_request(clock.spec.name, clock.due, self._breaches, self._status)
        found = await workflow.execute_activity(
            "sla_warn",
            request,
            result_type=StepFinding,
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=QUICK_RETRY,
            summary=f"{clock.spec.name} warning via {request.channel}",
        )
        self._escalations.append(
            EscalationStep(
                clock=clock.spec.name,
                step=EscalationStepName.WARNING,
                at=workflow.now(),
                finding=found.finding,
                channel=request.channel,
            )
        )
        self._touch()

    # ---- the escalation checklist --------------------------------------------------------------

    async def _escalate(self, clock: ClockRun, breach_number: int) -> None:
        """Steps 1–3 are activities; 4 waits for an operator's answer or the application's progress;
        5 runs on the application's second and later breach."""
        name = clock.spec.name
        seen = self._changes
        request = self._escalation_request(name, clock.due, breach_number)
        for step, activity in _AUTOMATIC_STEPS:
            found = await workflow.execute_activity(
                activity,
                request,
                result_type=StepFinding,
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=QUICK_RETRY,
                summary=f"{name} breached: {step.value}",
            )
            self._escalations.append(
                EscalationStep(clock=name, step=step, at=workflow.now(), finding=found.finding)
            )
            self._publish()
        answer = EscalationStep(clock=name, step=EscalationStepName.RECORD_ANSWER, at=None)
        self._escalations.append(answer)
        if self._changes != seen:  # the application already moved on while steps 1–3 ran
            self._answer_by_progress(answer, self._periods[-1])
        else:
            self._publish()
            await workflow.wait_condition(lambda: answer.at is not None or self._closed is not None)
        if breach_number >= 2:
            found = await workflow.execute_activity(
                "sla_raise_process_flag",
                request,
                result_type=StepFinding,
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=QUICK_RETRY,
                summary=f"repeated breach #{breach_number}: process-correction flag",
            )
            self._flag = True
            self._escalations.append(
                EscalationStep(
                    clock=name,
                    step=EscalationStepName.RAISE_PROCESS_FLAG,
                    at=workflow.now(),
                    finding=found.finding,
                )
            )
            self._publish()

    async def _escalate_v2(self, clock: ClockRun, breach_number: int, repeated: bool) -> None:
        """Steps 1–3 are activities; 4 is shown awaited until an operator's answer or the next status
        change fills it; 5 follows at once on a repeated breach — a second breach is a fact whether
        or not anyone has answered the first, so the flag does not wait for step 4."""
        name = clock.spec.name
        # Where it was stuck at the deadline (a change that stopped the clock late came after it).
        stuck = next((p.status for p in reversed(self._periods) if p.entered <= clock.due), self._status)
        request = self._escalation_request(name, clock.due, breach_number, stuck)
        for step, activity in _AUTOMATIC_STEPS:
            found = await workflow.execute_activity(
                activity,
                request,
                result_type=StepFinding,
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=QUICK_RETRY,
                summary=f"{name} breached: {step.value}",
            )
            channel = request.channel if step is EscalationStepName.HAND_OVER else None
            self._escalations.append(
                EscalationStep(
                    clock=name, step=step, at=workflow.now(), finding=found.finding, channel=channel
                )
            )
            self._touch()
        answer = EscalationStep(clock=name, step=EscalationStepName.RECORD_ANSWER, at=None)
        self._escalations.append(answer)
        progress = next((p for p in self._periods if p.entered > clock.due), None)
        if progress is not None:  # the application moved on after the deadline: that is the answer
            self._answer_by_progress(answer, progress)
        self._touch()
        if repeated:
            await self._raise_flag(request, name, breach_number)

    async def _raise_flag(self, request: EscalationRequest, clock: str, breach_number: int) -> None:
        found = await workflow.execute_activity(
            "sla_raise_process_flag",
            request,
            result_type=StepFinding,
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=QUICK_RETRY,
            summary=f"repeated breach #{breach_number}: process-correction flag",
        )
        self._flag = True
        self._escalations.append(
            EscalationStep(
                clock=clock,
                step=EscalationStepName.RAISE_PROCESS_FLAG,
                at=workflow.now(),
                finding=found.finding,
                channel=PARTNER_CHANNEL,
            )
        )
        self._touch()

    def _escalation_request(
        self, clock: str, due: datetime, breach_number: int, status: SlaStatus | None = None
    ) -> EscalationRequest:
        return EscalationRequest(
            application_id=self._app.id,
            partner=self._app.partner,
            timezone=self._app.calendar.timezone,
            clock=clock,
            status=status or self._status,
            due=due,
            paid=any(p.status is SlaStatus.PAID for p in self._periods),
            responsible=self._app.responsible,
            breach_number=breach_number,
            urgent=self._app.urgent and self._v2,
        )

    @staticmethod
    def _answer_by_progress(step: EscalationStep, period: StatusPeriod) -> None:
        step.at = period.entered
        step.finding = f"status moved to {period.status.value} by {period.by}" + (
            f": {period.reason}" if period.reason else ""
        )

    def _awaiting_answer(self, clock: str | None) -> EscalationStep | None:
        """The oldest step 4 awaiting an answer, of `clock` or (None) of any clock."""
        return next(
            (
                s
                for s in self._escalations
                if (clock is None or s.clock == clock)
                and s.step is EscalationStepName.RECORD_ANSWER
                and s.at is None
            ),
            None,
        )

    # ---- status changes ------------------------------------------------------------------------

    def _apply(self, change: StatusChange) -> None:
        current = self._periods[-1]
        now = _clamp(change.at, current.entered, workflow.now())
        current.left = now
        current.business_seconds = int(self._calendar.between(current.entered, now).total_seconds())
        period = StatusPeriod(status=change.status, entered=now, by=change.by, reason=change.reason)
        if change.status in TERMINAL:
            period.left = now
        self._periods.append(period)
        self._status = change.status
        for clock in self._clocks:
            if clock.running and clock.spec.stopped_by(change.status):
                clock.stopped = now
        self._start_clocks(change.status, now)
        for step in self._escalations:
            if step.step is EscalationStepName.RECORD_ANSWER and step.at is None:
                self._answer_by_progress(step, period)
        self._changes += 1
        self._revision += 1
        workflow.upsert_search_attributes([sa.SLA_STATUS.value_set(change.status.value)])
        self._publish()

    def _start_clocks(self, status: SlaStatus, now: datetime) -> None:
        for spec in self._app.clocks:
            if spec.starts_at is status and (self._app.urgent or not spec.urgent_only):
                self._clocks.append(start_clock(spec, now, self._calendar))

    def _refusal(self, change: StatusChange) -> str | None:
        """Why a change is refused: a closed journey, a move the process forbids, or a moment the
        support calendar cannot count (refused here rather than failing the workflow task)."""
        if self._closed is not None:
            return f"the journey is closed ({self._closed}); {change.status.value} is not possible"
        refusal = transition_error(self._status, change.status)
        if refusal is not None:
            return refusal
        moment = _clamp(change.at, self._periods[-1].entered, workflow.now())
        return calendar_problem(self._app.clocks, change.status, moment, self._calendar)

    @workflow.update(name="change_status")
    def change_status(self, change: StatusChange) -> ApplicationStatus:
        """A status change from the partner cabinet or the CLI; refused moves are rejected."""
        self._apply(change)
        return self.status()

    @change_status.validator
    def _validate_change(self, change: StatusChange) -> None:
        refusal = self._refusal(change)
        if refusal is not None:
            raise ValueError(f"application {self._app.id}: {refusal}")

    @workflow.signal(name="status_changed")
    def status_changed(self, change: StatusChange) -> None:
        """Fire-and-forget variant (drivers, webhooks): a refused move is kept in `rejected`."""
        refusal = self._refusal(change)
        if refusal is not None:
            self._rejected.append(
                RejectedChange(at=workflow.now(), status=change.status.value, by=change.by, reason=refusal)
            )
            self._revision += 1
            return
        self._apply(change)

    @workflow.update(name="record_answer")
    def record_answer(self, answer: EscalationAnswer) -> ApplicationStatus:
        """Checklist step 4 by an operator: the answer and its time."""
        step = self._awaiting_answer(answer.clock)
        assert step is not None  # the validator guarantees it
        step.at = workflow.now()
        step.finding = f"{answer.by}: {answer.text}"
        self._touch()
        return self.status()

    @record_answer.validator
    def _validate_answer(self, answer: EscalationAnswer) -> None:
        if self._awaiting_answer(answer.clock) is None:
            which = "" if answer.clock is None else f" of clock {answer.clock!r}"
            raise ValueError(f"application {self._app.id}: no escalation{which} awaits an answer")

    @workflow.signal(name="close")
    def close(self, request: CloseRequest) -> None:
        """End the journey without a final status; running clocks stay unstopped in the record."""
        if self._closed is None and self._status not in TERMINAL:
            self._closed = f"{request.reason} ({request.by})"
            self._touch()

    # ---- the view ------------------------------------------------------------------------------

    @workflow.query(name="status")
    def status(self, at: datetime | None = None) -> ApplicationStatus:
        """The journey as of `at` (the caller's clock) or of its last task: a query does not advance
        workflow time, so a cabinet asking at night passes its own now to see the clock paused."""
        now = max(at, workflow.now()) if at is not None else workflow.now()
        periods = [period.model_copy() for period in self._periods]
        last = periods[-1]
        if last.left is None:
            last.business_seconds = int(self._calendar.between(last.entered, now).total_seconds())
        time_in_status: dict[str, int] = {}
        for period in periods:
            time_in_status[period.status.value] = (
                time_in_status.get(period.status.value, 0) + period.business_seconds
            )
        return ApplicationStatus(
            workflow_id=self._id,
            as_of=now,
            id=self._app.id,
            partner=self._app.partner,
            urgent=self._app.urgent,
            calendar=self._app.calendar,
            status=self._status,
            finished=self._done,
            closed_reason=self._closed,
            responsible_now=self._app.responsible.for_duty(DUTY_OF_STATUS[self._status]),
            periods=periods,
            time_in_status=time_in_status,
            clocks=[view(clock, now, self._calendar) for clock in self._clocks],
            escalations=[step.model_copy() for step in self._escalations],
            breaches=self._breaches,
            process_flag=self._flag,
            rejected=list(self._rejected),
        )

    async def _record(self) -> None:
        await workflow.execute_activity(
            "sla_record_application",
            self.status(),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=QUICK_RETRY,
            summary=f"record status {self._status.value}",
        )

    def _local(self, moment: datetime) -> datetime:
        return moment.astimezone(zone(self._app.calendar.timezone))

    def _publish(self) -> None:
        """Keep the Temporal UI truthful: the status, the running clocks and the escalations."""
        lines = [
            f"**Application** {self._app.id} ({self._app.partner})"
            + (" — urgent" if self._app.urgent else ""),
            f"**Status** {self._status.value}" + (f" — closed: {self._closed}" if self._closed else ""),
        ]
        for clock in self._clocks:
            state = "breached" if clock.breached_at else ("running" if clock.running else "stopped")
            lines.append(f"**{clock.spec.name}** {state}, due {self._local(clock.due):%d.%m %H:%M %Z}")
        awaiting = [s.clock for s in self._escalations if s.at is None]
        if awaiting:
            lines.append(f"**Awaiting answer** for {', '.join(awaiting)}")
        if self._flag:
            lines.append("**Process flag** raised (repeated breach)")
        workflow.set_current_details("\n\n".join(lines))


def _clamp(moment: datetime | None, earliest: datetime | None, now: datetime) -> datetime:
    """A reported moment, but never in the future and never before the previous change."""
    if moment is None or moment > now:
        return now
    return moment if earliest is None or moment >= earliest else earliest


# ---- simulation ---------------------------------------------------------------------------------


class TimedChange(BaseModel):
    model_config = ConfigDict(frozen=True)

    at: datetime
    change: StatusChange


class SimulationRun(BaseModel):
    """One scripted application: submitted at `submitted_at`, changes at their moments, and closed at
    `horizon` (after every clock that could still run is past its breach) if it is not finished."""

    model_config = ConfigDict(frozen=True)

    workflow_id: str
    application: ApplicationInput
    submitted_at: datetime
    changes: list[TimedChange]
    horizon: datetime


async def _outcome(
    handle: workflow.ChildWorkflowHandle[PartnerApplication, ApplicationStatus],
) -> ApplicationStatus:
    return await handle


async def _sleep_until(moment: datetime, summary: str) -> None:
    if moment > workflow.now():
        await workflow.sleep(moment - workflow.now(), summary=summary)


@workflow.defn(name="SimulateApplication")
class SimulateApplication:
    @workflow.run
    async def run(self, run: SimulationRun) -> ApplicationStatus:
        await _sleep_until(run.submitted_at, "until the submission")
        handle = await workflow.start_child_workflow(
            PartnerApplication.run, run.application, id=run.workflow_id
        )
        outcome = asyncio.create_task(_outcome(handle))
        for timed in sorted(run.changes, key=lambda t: t.at):
            await _sleep_until(timed.at, timed.change.status.value)
            if outcome.done():
                break
            try:
                change = timed.change.model_copy(update={"at": timed.at})
                await handle.signal(PartnerApplication.status_changed, change)
            except ApplicationError:
                break  # the journey has already finished; later events have nowhere to go
        if not outcome.done() and run.horizon > workflow.now():
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    outcome.done,
                    timeout=run.horizon - workflow.now(),
                    timeout_summary="until every running clock is past its breach",
                )
        if not outcome.done():
            await handle.signal(
                PartnerApplication.close, CloseRequest(by="simulation", reason="end of script")
            )
        return await outcome
