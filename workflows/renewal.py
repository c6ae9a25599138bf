"""RenewalJourney: one durable workflow per expiring policy term.

It interprets `renewals.rules`: sleeps until each touchpoint's moment in the client's send window,
decides (gate, condition, portal check) whether the touchpoint goes out, and sends through the one
send activity, whatever the channel. Signals and updates bring in what happens meanwhile; the
journey stops the moment the renewal is secured, the client opts out, the policy is cancelled or the
client refuses an operator. A cancellation request (the Temporal UI's «Request Cancellation», or
`renewals cancel`) is handled too: the journey ends as `cancelled` with the request's reason, closes its
operator tasks, records its outcome, and only then ends as Canceled in Temporal.

Determinism: time only from `workflow.now()`, all I/O in activities.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import date, datetime, timedelta
from itertools import groupby

from temporalio import workflow
from temporalio.exceptions import is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from renewals.activity_io import (
        SendReceipt,
    )
    from renewals.journey_api import (
        ENGAGEMENT_EVENTS,
        EVENT_SIGNAL,
        OPERATOR_OUTCOME_UPDATE,
        POLICY_UPDATE,
        ROBOT_OUTCOME_SIGNAL,
        STATUS_QUERY,
        WORKFLOW_TYPE,
        EntryStatus,
        EventType,
        JourneyEvent,
        JourneyInput,
        JourneyStatus,
        OperatorOutcomeReport,
        RobotOutcome,
        RobotOutcomeReport,
        Stage,
    )
    from renewals.models import Channel, Policy
    from renewals.rules import (
        ENDING_EVENTS,
        KEEPS_TASK_OPEN,
        MISSING_ADDRESS,
        OPERATOR_AT_17,
        OPERATOR_AT_LATE_INTAKE,
        OPERATOR_ENDINGS,
        PORTAL_CONDITIONS,
        ROBOT_DO_NOT_CONTACT,
        Facts,
        LateIntake,
        Touchpoint,
        gate_reason,
        holdout_reason,
        late_intake,
        policy_update_problem,
        robot_handoff,
        robot_series_stops,
        segment_of,
        stage_after,
        touchpoints_for,
        unmet,
    )
from workflows.renewal_record import JourneyRecord
from workflows.renewal_sends import CANCEL_PATCH, Failed, JourneySends

PAID_AT_PORTAL_CHECK = "payment_received"


@workflow.defn(name=WORKFLOW_TYPE)
class RenewalJourney:
    """One policy term's renewal journey. Its whole interface (names in `renewals.journey_api`):

    - input `JourneyInput` (the policy, the client's send window); result `JourneyStatus`.
    - signal `event` (`JourneyEvent`): payment, renewal, opt-out, cancellation end the journey;
      a draft or quote in the portal, an opened e-mail, a read VK message or an SMS reply are kept
      for the touchpoints' conditions; delivery reports are noted.
    - signal `robot_outcome` (`RobotOutcomeReport`): Робот Даша's call result, today's or late.
    - update `operator_outcome` (`OperatorOutcomeReport` → `JourneyStatus`): a renewal-centre
      operator's result; validated: the task belongs to this journey and is still open.
    - update `update_policy` (`Policy` → `JourneyStatus`): new contacts, agent card or centre;
      validated: same term, nothing that decides the touchpoints changes.
    - query `status` → `JourneyStatus`: stage, next touchpoint, timeline, events.
    - a cancellation request (`renewals cancel`, the UI): ends the journey as `cancelled`, then the
      workflow as Canceled, after its operator tasks are closed and its outcome recorded.
    """

    @workflow.init
    def __init__(self, journey: JourneyInput) -> None:
        self._record = JourneyRecord(workflow.info().workflow_id, journey.policy)
        self._sends = JourneySends(self._record)
        self._window = journey.window
        # The experiments holding this client out (renewals/experiments): only journeys started with
        # holdouts have any, so a journey without them runs exactly as before (no patch needed).
        self._holdouts = journey.holdouts
        self._draft = False
        self._quote = False
        self._engaged_by: EventType | None = None
        self._robot_stopped = False
        self._robot_calls = 0
        self._robot_outcomes: dict[str, RobotOutcome] = {}
        self._latest_robot_task: str | None = None
        self._robot_tasks: set[str] = set()  # the calls this journey placed (the provider's task ids)
        self._operator_tasks: dict[str, bool] = {}  # task id → still open
        self._awaited_robot_task: str | None = None  # the call whose outcome today's wait is for
        self._handoff_owed: str | None = None  # a late robot contact: open an operator task soon
        self._cancelled_by_request = False  # a cancellation request is what ended the journey

    # ---- messages from outside -----------------------------------------------------------------

    @workflow.signal(name=EVENT_SIGNAL)
    def on_event(self, event: JourneyEvent) -> None:
        """Payment, draft, quote, renewal, engagement, opt-out, cancellation or a delivery report."""
        self._record.note(event.type.value, event.source)
        if self._finished:
            return
        if event.type in ENDING_EVENTS:
            self._record.finish(ENDING_EVENTS[event.type], f"{event.type.value} ({event.source or 'signal'})")
        elif event.type is EventType.DRAFT_CREATED:
            self._draft = True
        elif event.type is EventType.QUOTE_CREATED:
            self._quote = True
        elif event.type in ENGAGEMENT_EVENTS and self._engaged_by is None:
            self._engaged_by = event.type

    @workflow.signal(name=ROBOT_OUTCOME_SIGNAL)
    def on_robot_outcome(self, report: RobotOutcomeReport) -> None:
        """An outcome by webhook. Today's call applies it where it waits; a late one (after its
        day's calling hours) still counts: contact is contact."""
        task_id = report.task_id or self._latest_robot_task
        self._record.note(f"robot_outcome: {report.outcome.value}", task_id)
        if task_id is not None:
            self._robot_outcomes[task_id] = report.outcome
        if task_id == self._awaited_robot_task or self._finished:
            return
        if task_id not in self._robot_tasks:
            return  # not a call of this journey (yet): a call still in flight finds its outcome kept above
        handoff = self._apply_robot_outcome(report.outcome)
        if handoff is not None:
            self._handoff_owed = handoff  # signal handlers cannot await: the run loop opens it

    @workflow.update(name=OPERATOR_OUTCOME_UPDATE)
    def on_operator_outcome(self, report: OperatorOutcomeReport) -> JourneyStatus:
        """A renewal-centre operator's result; the agent stays on the renewal on every path."""
        self._operator_tasks[report.task_id] = report.outcome in KEEPS_TASK_OPEN
        detail = f"task {report.task_id}" + (f": {report.note}" if report.note else "")
        self._record.note(f"operator_outcome: {report.outcome.value}", detail)
        if report.outcome in OPERATOR_ENDINGS:
            self._record.finish(*OPERATOR_ENDINGS[report.outcome])
        return self.status()

    @on_operator_outcome.validator
    def _validate_operator_outcome(self, report: OperatorOutcomeReport) -> None:
        if report.task_id not in self._operator_tasks:
            raise ValueError(f"operator task {report.task_id} does not belong to journey {self._record.id}")
        if not self._operator_tasks[report.task_id]:
            raise ValueError(f"operator task {report.task_id} is already closed")

    @workflow.update(name=POLICY_UPDATE)
    def on_policy_update(self, policy: Policy) -> JourneyStatus:
        """New phone, e-mail, agent card or centre: later touchpoints use the new data."""
        self._record.note("policy_updated", None)
        self._record.replace_policy(policy)
        return self.status()

    @on_policy_update.validator
    def _validate_policy_update(self, policy: Policy) -> None:
        problem = policy_update_problem(self._record.id, self._policy, policy)
        if problem is not None:
            raise ValueError(problem)

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> JourneyStatus:
        return self._record.status()

    # ---- the journey ---------------------------------------------------------------------------

    @workflow.run
    async def run(self, journey: JourneyInput) -> JourneyStatus:
        """The journey, then its end (`JourneySends.close`). A cancellation request reaches the
        journey as a cancelled timer or activity wherever it waits, or — where an activity's failure
        is absorbed (a portal check) — through `_watch_cancellation`; either way it ends as `cancelled`,
        is closed like any other end, and the workflow then ends as Canceled."""
        watcher = asyncio.create_task(self._watch_cancellation())
        try:
            await self._journey()
            await self._sends.close()
        except (asyncio.CancelledError, Exception) as error:
            # not BaseException: a journey evicted at worker shutdown gets GeneratorExit, which must
            # pass untouched (no workflow call may run outside the workflow's event loop)
            if not is_cancelled_exception(error) or workflow.cancellation_reason() is None:
                raise
            if not workflow.patched(CANCEL_PATCH):
                raise  # a journey cancelled before the patch: it ended where it was
            self._end_by_cancellation()
            await self._sends.close()
        watcher.cancel()  # no-op once it has run; else it has nothing left to watch for
        if self._cancelled_by_request:
            raise asyncio.CancelledError(self._record.finish_reason())
        return self.status()

    async def _watch_cancellation(self) -> None:
        """A cancellation request ends the journey like a payment would, even where the run absorbs
        the cancelled activity it was waiting on."""
        await workflow.wait_condition(lambda: workflow.cancellation_reason() is not None)
        if workflow.patched(CANCEL_PATCH):
            self._end_by_cancellation()

    def _end_by_cancellation(self) -> None:
        if self._finished:
            return  # it had already ended (paid, opted out…): the request changes nothing
        reason = (workflow.cancellation_reason() or "").strip()
        self._cancelled_by_request = True
        self._record.finish(Stage.CANCELLED, f"cancellation requested: {reason or 'no reason given'}")

    async def _journey(self) -> None:
        record = self._record
        start_day = record.local_today()
        expires_on = self._policy.expires_on
        record.upsert_all()
        record.publish()
        if start_day > expires_on:
            record.finish(Stage.LAPSED, "started after the last day of cover")
        for _, same_day in groupby(touchpoints_for(self._policy), key=lambda tp: tp.day):
            group = list(same_day)
            if self._finished:
                break
            day = expires_on + timedelta(days=group[0].day)
            if day < start_day:
                for touchpoint in group:
                    await self._skip_past_day(touchpoint, start_day)
                continue
            await self._run_day(group, day)
        if not self._finished:
            record.next = None
            record.show_details()
            end_of_cover = record.end_of_cover()
            while not self._finished and workflow.now() < end_of_cover:
                await self._settle_handoff()
                await self._wait(self._woken, end_of_cover, "until the last day of cover ends")
            if not self._finished:
                record.finish(Stage.LAPSED, "no payment or renewal by the end of cover")

    async def _run_day(self, group: list[Touchpoint], day: date) -> None:
        """A day's touchpoints (the −30 e-mail, VK and SMS; the −17 e-mail and operator task) go out
        together at the window's opening: one timer and one workflow task instead of one each."""
        due_now = self._not_stopped(group)
        if not due_now:
            return
        due = self._window.due_moment(day, workflow.now(), self._record.tz, key=self._record.id)
        if not await self._sleep_until(due, due_now[0]):
            return
        due_now = self._not_stopped(due_now)  # while it slept a late robot outcome may have stopped calls
        if not due_now or await self._robot_day_missed(due_now, day):
            return
        timeline = self._record.timeline
        first_new = len(timeline)
        await asyncio.gather(*(self._run_touchpoint(tp) for tp in due_now))
        order = {tp.key: index for index, tp in enumerate(due_now)}
        timeline[first_new:] = sorted(
            timeline[first_new:], key=lambda entry: order.get(entry.touchpoint, len(order))
        )

    def _not_stopped(self, group: list[Touchpoint]) -> list[Touchpoint]:
        return [tp for tp in group if not (tp.rule.channel is Channel.ROBOT_CALL and self._robot_stopped)]

    async def _robot_day_missed(self, group: list[Touchpoint], day: date) -> bool:
        """Робот Даша calls at most once a day and only on its own day: a call whose day's calling
        hours are over (late intake, a backlog) is not made up later; the series goes on tomorrow."""
        robot = [tp for tp in group if tp.rule.channel is Channel.ROBOT_CALL]
        if not robot or self._record.local_today() == day:
            return False
        await self._sends.suppress(robot[0], "calling_window_closed", self._policy.client.phone)
        return True

    async def _skip_past_day(self, touchpoint: Touchpoint, start_day: date) -> None:
        """Late intake: a day already past is never sent (`rules.late_intake` says what it becomes)."""
        what = late_intake(touchpoint)
        if what is LateIntake.OPERATOR_NOW:
            day = (start_day - self._policy.expires_on).days
            await self._open_operator_task(day, OPERATOR_AT_LATE_INTAKE)
        elif what is LateIntake.NOTE:
            await self._sends.suppress(touchpoint, "day_passed_before_intake", None)

    async def _sleep_until(self, due: datetime, touchpoint: Touchpoint) -> bool:
        """Sleep until `due`; True if the touchpoint should run, False if the journey finished.
        The day's sends carry that moment (`SendRequest.due_at`): their lateness is measured from it."""
        self._sends.due_at = self._window.next_open_moment(due, self._record.tz)
        while not self._finished:
            await self._settle_handoff()
            due = self._window.next_open_moment(max(due, workflow.now()), self._record.tz)
            if due <= workflow.now():
                return not self._finished
            self._record.expect(touchpoint, due)
            await self._wait(self._woken, due, f"{touchpoint.key} {touchpoint.rule.template}")
        return False

    def _woken(self) -> bool:
        return self._finished or self._handoff_owed is not None

    async def _settle_handoff(self) -> None:
        """Open the operator task a late robot outcome asked for (signal handlers cannot await)."""
        if self._handoff_owed is None or self._finished:
            return
        reason, self._handoff_owed = self._handoff_owed, None
        await self._open_operator_task(self._record.day_of_term(), reason)

    async def _wait(self, done: Callable[[], bool], until: datetime, summary: str) -> None:
        remaining = until - workflow.now()
        if remaining <= timedelta(0):
            return
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(done, timeout=remaining, timeout_summary=summary)

    async def _run_touchpoint(self, touchpoint: Touchpoint) -> None:
        channel = touchpoint.rule.channel
        reason = await self._suppression_reason(touchpoint)
        if self._finished:
            if reason in (PAID_AT_PORTAL_CHECK, self._ended_at_portal_check()):  # say why −5 did not go out
                await self._sends.suppress(touchpoint, reason, self._address(channel))
            return
        if reason is not None:
            await self._sends.suppress(touchpoint, reason, self._address(channel))
            if channel is Channel.ROBOT_CALL:
                self._robot_stopped = True
            return  # nothing happened: the stage tells operators what did
        if channel is Channel.ROBOT_CALL:
            await self._call_robot(touchpoint)
        elif channel is Channel.OPERATOR_TASK:
            await self._open_operator_task(touchpoint.day, OPERATOR_AT_17)
        else:
            await self._send(touchpoint)
        self._record.advance(stage_after(touchpoint))

    async def _suppression_reason(self, touchpoint: Touchpoint) -> str | None:
        """Why this touchpoint must not go out now, or None. Checked at the moment it is due."""
        gate = gate_reason(self._policy, segment_of(self._policy))
        if gate is not None:
            return gate
        condition = touchpoint.rule.condition
        if condition in PORTAL_CONDITIONS:
            await self._ask_portal()
            if self._finished:
                return self._ended_at_portal_check()
        reason = unmet(condition, self._facts())
        if reason is not None:
            return reason
        channel = touchpoint.rule.channel
        if channel in MISSING_ADDRESS and not self._address(channel):
            return MISSING_ADDRESS[channel]
        if workflow.now() >= self._record.end_of_cover():
            return "cover_ended"
        return holdout_reason(self._holdouts, touchpoint.rule.template)  # last: both arms measured alike

    def _ended_at_portal_check(self) -> str:
        """Why a portal-checked touchpoint did not go out when the journey ended during the check:
        the portal saw the payment, or (a cancellation arriving meanwhile) it ended otherwise."""
        stage = self._record.stage
        return PAID_AT_PORTAL_CHECK if stage is Stage.PAID else f"journey_finished ({stage.value})"

    def _facts(self) -> Facts:
        return Facts(
            first_prolongation_year=self._policy.first_prolongation_year,
            draft=self._draft,
            quote=self._quote,
            engaged_by=self._engaged_by,
            operator_task_opened=bool(self._operator_tasks),
        )

    async def _ask_portal(self) -> None:
        """The portal's view joins what signals told us; if it cannot answer before today's window
        closes, the signals alone decide (a −5 reminder too many beats a renewal lost)."""
        portal = await self._sends.ask_portal(self._window)
        if portal is None:
            return
        self._draft |= portal.draft
        self._quote |= portal.quote
        if portal.paid:
            self._record.note(EventType.PAYMENT_RECEIVED.value, "portal")
            self._record.finish(Stage.PAID, "payment seen in the agent portal")

    # ---- sends: every channel through one path --------------------------------------------------

    async def _send(self, touchpoint: Touchpoint) -> None:
        """An SMS, e-mail or VK message: it waits for the send window on a retry, until cover ends."""
        recipient = self._address(touchpoint.rule.channel) or ""
        message = await self._sends.render(touchpoint, recipient)
        if message is None:
            return
        sent = await self._sends.deliver(
            touchpoint,
            recipient,
            message,
            deadline=self._record.until_end_of_cover(),
            summary=f"{touchpoint.key}: {touchpoint.rule.template}",
            window=self._window,
            timezone=self._policy.client.timezone,
        )
        if isinstance(sent, SendReceipt):
            self._record.record(touchpoint, EntryStatus.SENT, None, recipient, message.text)

    async def _call_robot(self, touchpoint: Touchpoint) -> None:
        """One of Робот Даша's calls: today's calling hours only; its outcome comes with the answer or
        by webhook before the hours end (no word by then: no answer)."""
        phone = self._policy.client.phone
        message = await self._sends.render(touchpoint, phone)
        if message is None:
            self._robot_stopped = True
            return
        self._robot_calls += 1
        today = self._record.local_today()
        closing = self._window.closing(today, self._record.tz)
        sent = await self._sends.deliver(
            touchpoint,
            phone,
            message,
            deadline=max(closing - workflow.now(), timedelta(minutes=1)),
            summary=f"{touchpoint.key}: Робот Даша, call {self._robot_calls}",
            not_after=closing,
            attempt=self._robot_calls,
        )
        if isinstance(sent, Failed):
            self._robot_stopped = robot_series_stops(sent.error_type, sent.permanent)
        if not isinstance(sent, SendReceipt):
            return
        task_id = sent.provider_message_id
        self._latest_robot_task = task_id
        self._robot_tasks.add(task_id)
        outcome = sent.outcome
        if outcome is None:  # the provider reports by webhook: wait until today's calling hours end
            self._awaited_robot_task = task_id
            await self._wait(  # in the client's zone as it is now (an update may have moved it)
                lambda: task_id in self._robot_outcomes or self._finished,
                self._window.closing(today, self._record.tz),
                "waiting for Робот Даша's outcome",
            )
            self._awaited_robot_task = None
            outcome = self._robot_outcomes.get(task_id, RobotOutcome.NO_ANSWER)
        self._record.record(touchpoint, EntryStatus.SENT, f"outcome: {outcome.value}", phone, message.text)
        handoff = self._apply_robot_outcome(outcome, today=True)
        if handoff is not None:
            await self._open_operator_task(touchpoint.day, handoff)

    def _apply_robot_outcome(self, outcome: RobotOutcome, today: bool = False) -> str | None:
        """What an outcome does, today's call's or a late one: do-not-contact ends the journey; a
        contact stops the calls and asks for an operator (the reason returned). A late contact after
        the calls already stopped asks for nothing more."""
        if outcome is RobotOutcome.DO_NOT_CONTACT:
            self._record.finish(Stage.OPTED_OUT, ROBOT_DO_NOT_CONTACT)
            return None
        handoff = robot_handoff(outcome)
        if handoff is None or (self._robot_stopped and not today):
            return None
        self._robot_stopped = True
        return handoff

    async def _open_operator_task(self, day: int, reason: str) -> None:
        """Hand the client to the renewal centre: at −17, or on the day Робот Даша made contact."""
        task_id = await self._sends.open_operator_task(day, reason)
        if task_id is not None:
            self._operator_tasks[task_id] = True

    def _address(self, channel: Channel) -> str | None:
        client = self._policy.client
        return {
            Channel.SMS: client.phone,
            Channel.ROBOT_CALL: client.phone,
            Channel.EMAIL: client.email,
            Channel.VK: client.vk_id,
            Channel.OPERATOR_TASK: self._policy.regional_centre.id if self._policy.regional_centre else None,
        }[channel]

    @property
    def _policy(self) -> Policy:
        return self._record.policy

    @property
    def _finished(self) -> bool:
        return self._record.finished
