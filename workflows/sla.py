"""PartnerApplication: one durable journey per realtor application, with business-hours SLA clocks.

Each status change stops and starts clocks (`renewals.sla.targets.SlaTargets`), and the journey
sleeps until the next warning or breach moment. A warning notifies whoever can still keep the
deadline (an urgent application: the urgent line). A breach runs the seed's escalation checklist as
a tracked sequence of activities and one awaited answer. The report's snapshot is stored after every
change of the journey's state. The scripted driver is in `workflows/sla_simulation.py`.

Determinism: time only from `workflow.now()`, I/O only in activities, called through their methods
(`activities.sla.SlaActivities`); the bookkeeping is pure (`renewals.sla.clocks`, `.timeline`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.sla import SlaActivities
    from renewals import search_attributes as sa
    from renewals.sendwindow import zone
    from renewals.sla import application_api as api
    from renewals.sla import timeline
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
from workflows.retries import ACTIVITY_TIMEOUT, QUICK_RETRY

Step = Callable[[SlaActivities, EscalationRequest], Awaitable[StepFinding]]
_AUTOMATIC_STEPS: tuple[tuple[EscalationStepName, Step], ...] = (
    (EscalationStepName.CHECK_DATA_AND_PAYMENT, SlaActivities.check_data_and_payment),
    (EscalationStepName.LOCATE_BLOCKER, SlaActivities.locate_blocker),
    (EscalationStepName.HAND_OVER, SlaActivities.hand_over),
)


@workflow.defn(name=api.WORKFLOW_TYPE)
class PartnerApplication:
    """One realtor application through the insurer's statuses, measured against its SLA clocks.

    Interface (the names are constants in `renewals.sla.application_api`):

    - run `PartnerApplication` (ApplicationInput) → ApplicationStatus, when the application is
      issued or cancelled, or closed. A submission the support calendar cannot count fails the run
      (CalendarNotCovered); starters check it first.
    - update `change_status` (StatusChange) → ApplicationStatus: a status change from the partner
      cabinet or the CLI. Its validator refuses a closed journey, a move the process forbids
      (backwards, a repeat, issued before paid) and a moment the calendar cannot count, so a refused
      move never enters history.
    - signal `status_changed` (StatusChange): the same, fire-and-forget (drivers, webhooks); a
      refused move is kept in `rejected`.
    - update `record_answer` (EscalationAnswer) → ApplicationStatus: checklist step 4 by an
      operator. Its validator refuses it when no escalation (of the answer's clock) awaits one.
    - signal `close` (CloseRequest): end the journey without a final status.
    - query `status` (datetime | None) → ApplicationStatus: the journey as of the caller's clock.
    """

    @workflow.init
    def __init__(self, application: ApplicationInput) -> None:
        self._app = application
        self._calendar = BusinessCalendar(application.calendar)
        self._id = workflow.info().workflow_id
        now = timeline.clamp(application.submitted_at, None, workflow.now())
        self._status = SlaStatus.SUBMITTED
        self._periods = [StatusPeriod(status=SlaStatus.SUBMITTED, entered=now, by=application.submitted_by)]
        self._clocks: list[ClockRun] = []
        self._escalations: list[EscalationStep] = []
        self._rejected: list[RejectedChange] = []
        self._breaches = 0
        self._flag = False
        self._closed: str | None = None
        self._escalating: list[asyncio.Task[None]] = []
        self._revision = 0  # every change of the state the snapshot shows: what wakes the journey
        # A submission the calendar cannot count fails the run cleanly (starters check it first).
        self._invalid = calendar_problem(application.clocks, SlaStatus.SUBMITTED, now, self._calendar)
        if self._invalid is None:
            self._start_clocks(SlaStatus.SUBMITTED, now)

    # ---- the interface -------------------------------------------------------------------------

    @workflow.update(name=api.CHANGE_STATUS_UPDATE)
    def change_status(self, change: StatusChange) -> ApplicationStatus:
        """A status change from the partner cabinet or the CLI; refused moves are rejected."""
        self._apply(change)
        return self.status()

    @change_status.validator
    def _validate_change(self, change: StatusChange) -> None:
        refusal = self._refusal(change)
        if refusal is not None:
            raise ValueError(f"application {self._app.id}: {refusal}")

    @workflow.signal(name=api.STATUS_CHANGED_SIGNAL)
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

    @workflow.update(name=api.RECORD_ANSWER_UPDATE)
    def record_answer(self, answer: EscalationAnswer) -> ApplicationStatus:
        """Checklist step 4 by an operator: the answer and its time."""
        step = timeline.awaiting_answer(self._escalations, answer.clock)
        assert step is not None  # the validator guarantees it
        step.at = workflow.now()
        step.finding = f"{answer.by}: {answer.text}"
        self._touch()
        return self.status()

    @record_answer.validator
    def _validate_answer(self, answer: EscalationAnswer) -> None:
        if timeline.awaiting_answer(self._escalations, answer.clock) is None:
            which = "" if answer.clock is None else f" of clock {answer.clock!r}"
            raise ValueError(f"application {self._app.id}: no escalation{which} awaits an answer")

    @workflow.signal(name=api.CLOSE_SIGNAL)
    def close(self, request: CloseRequest) -> None:
        """End the journey without a final status; running clocks stay unstopped in the record."""
        if self._closed is None and self._status not in TERMINAL:
            self._closed = f"{request.reason} ({request.by})"
            self._touch()

    @workflow.query(name=api.STATUS_QUERY)
    def status(self, at: datetime | None = None) -> ApplicationStatus:
        """The journey as of `at` (the caller's clock) or of its last task: a query does not advance
        workflow time, so a cabinet asking at night passes its own now to see the clock paused."""
        now = max(at, workflow.now()) if at is not None else workflow.now()
        periods = [period.model_copy() for period in self._periods]
        last = periods[-1]
        if last.left is None:
            last.business_seconds = int(self._calendar.between(last.entered, now).total_seconds())
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
            time_in_status=timeline.time_in_status(periods),
            clocks=[view(clock, now, self._calendar) for clock in self._clocks],
            escalations=[step.model_copy() for step in self._escalations],
            breaches=self._breaches,
            process_flag=self._flag,
            rejected=list(self._rejected),
        )

    # ---- the journey ---------------------------------------------------------------------------

    @workflow.run
    async def run(self, application: ApplicationInput) -> ApplicationStatus:
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
            if recorded != self._revision:  # keep the report's store current after every change
                recorded = self._revision
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
        """Until the next warning or breach, or until any change re-plans the clocks."""
        seen = self._revision

        def changed() -> bool:
            return self._revision != seen or self._closed is not None

        pending = [(moment, clock) for clock in self._clocks if (moment := clock.next_moment()) is not None]
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
        """Warn the clocks whose warning has come; escalate the ones that ran past `due` (still
        running after it, or stopped by a change that came after it)."""
        for clock in self._clocks:
            if clock.warning_due(now):
                clock.warned = clock.warn_at
                self._background(self._warn(clock))
            if clock.overran(now):
                clock.breached_at = clock.due
                self._breaches += 1
                repeated = timeline.is_repeated(self._clocks, clock)
                workflow.upsert_search_attributes([sa.SLA_BREACHED.value_set(True)])
                self._background(self._escalate(clock, self._breaches, repeated))

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` beside the journey (awaited before it ends), and show what started it."""
        self._escalating.append(asyncio.create_task(work))
        self._touch()

    def _touch(self) -> None:
        self._revision += 1
        self._publish()

    # ---- the warning and the escalation checklist ----------------------------------------------

    async def _warn(self, clock: ClockRun) -> None:
        """The warning before the breach, as a notice to whoever can still keep the deadline."""
        request = self._escalation_request(clock, self._breaches, self._status)
        found = await self._step(
            SlaActivities.warn, request, f"{clock.spec.name} warning via {request.channel}"
        )
        self._note(clock.spec.name, EscalationStepName.WARNING, found, request.channel)

    async def _escalate(self, clock: ClockRun, breach_number: int, repeated: bool) -> None:
        """Steps 1–3 are activities; 4 is shown awaited until an operator's answer or the next status
        change fills it; 5 follows at once on a repeated breach — a second breach is a fact whether
        or not anyone has answered the first, so the flag does not wait for step 4."""
        name = clock.spec.name
        # Where it was stuck at the deadline (a change that stopped the clock late came after it).
        stuck = timeline.status_at(self._periods, clock.due, self._status)
        request = self._escalation_request(clock, breach_number, stuck)
        for step, activity in _AUTOMATIC_STEPS:
            found = await self._step(activity, request, f"{name} breached: {step.value}")
            self._note(name, step, found, request.channel if step is EscalationStepName.HAND_OVER else None)
        answer = EscalationStep(clock=name, step=EscalationStepName.RECORD_ANSWER, at=None)
        self._escalations.append(answer)
        progress = timeline.progress_after(self._periods, clock.due)
        if progress is not None:  # the application moved on after the deadline: that is the answer
            timeline.answer_by_progress(answer, progress)
        self._touch()
        if repeated:
            summary = f"repeated breach #{breach_number}: process-correction flag"
            found = await self._step(SlaActivities.raise_process_flag, request, summary)
            self._flag = True
            self._note(name, EscalationStepName.RAISE_PROCESS_FLAG, found, PARTNER_CHANNEL)

    async def _step(self, activity: Step, request: EscalationRequest, summary: str) -> StepFinding:
        return await workflow.execute_activity_method(
            activity,
            request,
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=QUICK_RETRY,
            summary=summary,
        )

    def _note(self, clock: str, step: EscalationStepName, found: StepFinding, channel: str | None) -> None:
        self._escalations.append(
            EscalationStep(clock=clock, step=step, at=workflow.now(), finding=found.finding, channel=channel)
        )
        self._touch()

    def _escalation_request(
        self, clock: ClockRun, breach_number: int, status: SlaStatus
    ) -> EscalationRequest:
        return EscalationRequest(
            application_id=self._app.id,
            partner=self._app.partner,
            timezone=self._app.calendar.timezone,
            clock=clock.spec.name,
            status=status,
            due=clock.due,
            paid=any(p.status is SlaStatus.PAID for p in self._periods),
            responsible=self._app.responsible,
            breach_number=breach_number,
            urgent=self._app.urgent,
        )

    # ---- status changes ------------------------------------------------------------------------

    def _apply(self, change: StatusChange) -> None:
        current = self._periods[-1]
        now = timeline.clamp(change.at, current.entered, workflow.now())
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
                timeline.answer_by_progress(step, period)
        workflow.upsert_search_attributes([sa.SLA_STATUS.value_set(change.status.value)])
        self._touch()

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
        moment = timeline.clamp(change.at, self._periods[-1].entered, workflow.now())
        return calendar_problem(self._app.clocks, change.status, moment, self._calendar)

    # ---- the record and the UI -----------------------------------------------------------------

    async def _record(self) -> None:
        await workflow.execute_activity_method(
            SlaActivities.record_application,
            self.status(),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=QUICK_RETRY,
            summary=f"record status {self._status.value}",
        )

    def _local(self, moment: datetime) -> datetime:
        return moment.astimezone(zone(self._app.calendar.timezone))

    def _publish(self) -> None:
        """Keep the Temporal UI truthful: the status, the running clocks and the escalations."""
        workflow.set_current_details(
            timeline.details(
                self._app, self._status, self._closed, self._clocks, self._escalations, self._flag
            )
        )
