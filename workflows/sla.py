"""PartnerApplication: one durable journey per realtor application, with business-hours SLA clocks.

Status changes arrive as the `change_status` update (validated: a refused move never enters history)
or the `status_changed` signal (a refused move is kept in `rejected`). Each change stops and starts
clocks (`renewals.sla.settings.SlaTargets`), and the journey sleeps until the next warning or breach
moment. A breach runs the seed's escalation checklist as a tracked sequence of activities and one
awaited operator answer. SimulateApplication drives a journey from a script on the server's clock.

Determinism: time only from `workflow.now()`, I/O only in activities (called by name).
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
    from renewals.sendwindow import zone
    from renewals.sla import search_attributes as sa
    from renewals.sla.business_time import BusinessCalendar
    from renewals.sla.clocks import ClockRun, start_clock, view
    from renewals.sla.models import (
        DUTY_OF_STATUS,
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
        self._start_clocks(SlaStatus.SUBMITTED, now)

    # ---- the journey ---------------------------------------------------------------------------

    @workflow.run
    async def run(self, application: ApplicationInput) -> ApplicationStatus:
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
            if recorded != self._changes:  # keep the report's store current after every change
                recorded = self._changes
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
        seen = self._changes
        pending = [(moment, clock) for clock in self._clocks if (moment := clock.next_moment()) is not None]

        def changed() -> bool:
            return self._changes != seen or self._closed is not None

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

    def _fire_due(self, now: datetime) -> None:
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

    def _escalation_request(self, clock: str, due: datetime, breach_number: int) -> EscalationRequest:
        return EscalationRequest(
            application_id=self._app.id,
            partner=self._app.partner,
            timezone=self._app.calendar.timezone,
            clock=clock,
            status=self._status,
            due=due,
            paid=any(p.status is SlaStatus.PAID for p in self._periods),
            responsible=self._app.responsible,
            breach_number=breach_number,
        )

    @staticmethod
    def _answer_by_progress(step: EscalationStep, period: StatusPeriod) -> None:
        step.at = period.entered
        step.finding = f"status moved to {period.status.value} by {period.by}" + (
            f": {period.reason}" if period.reason else ""
        )

    def _awaiting_answer(self, clock: str) -> EscalationStep | None:
        return next(
            (
                s
                for s in self._escalations
                if s.clock == clock and s.step is EscalationStepName.RECORD_ANSWER and s.at is None
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
        workflow.upsert_search_attributes([sa.SLA_STATUS.value_set(change.status.value)])
        self._publish()

    def _start_clocks(self, status: SlaStatus, now: datetime) -> None:
        for spec in self._app.clocks:
            if spec.starts_at is status and (self._app.urgent or not spec.urgent_only):
                self._clocks.append(start_clock(spec, now, self._calendar))

    def _refusal(self, status: SlaStatus) -> str | None:
        if self._closed is not None:
            return f"the journey is closed ({self._closed}); {status.value} is not possible"
        return transition_error(self._status, status)

    @workflow.update(name="change_status")
    def change_status(self, change: StatusChange) -> ApplicationStatus:
        """A status change from the partner cabinet or the CLI; refused moves are rejected."""
        self._apply(change)
        return self.status()

    @change_status.validator
    def _validate_change(self, change: StatusChange) -> None:
        refusal = self._refusal(change.status)
        if refusal is not None:
            raise ValueError(f"application {self._app.id}: {refusal}")

    @workflow.signal(name="status_changed")
    def status_changed(self, change: StatusChange) -> None:
        """Fire-and-forget variant (drivers, webhooks): a refused move is kept in `rejected`."""
        refusal = self._refusal(change.status)
        if refusal is not None:
            self._rejected.append(
                RejectedChange(at=workflow.now(), status=change.status.value, by=change.by, reason=refusal)
            )
            return
        self._apply(change)

    @workflow.update(name="record_answer")
    def record_answer(self, answer: EscalationAnswer) -> ApplicationStatus:
        """Checklist step 4 by an operator: the answer and its time."""
        step = self._awaiting_answer(answer.clock)
        assert step is not None  # the validator guarantees it
        step.at = workflow.now()
        step.finding = f"{answer.by}: {answer.text}"
        self._publish()
        return self.status()

    @record_answer.validator
    def _validate_answer(self, answer: EscalationAnswer) -> None:
        if self._awaiting_answer(answer.clock) is None:
            raise ValueError(
                f"application {self._app.id}: no escalation of clock {answer.clock!r} awaits an answer"
            )

    @workflow.signal(name="close")
    def close(self, request: CloseRequest) -> None:
        """End the journey without a final status; running clocks stay unstopped in the record."""
        if self._closed is None and self._status not in TERMINAL:
            self._closed = f"{request.reason} ({request.by})"
            self._publish()

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
