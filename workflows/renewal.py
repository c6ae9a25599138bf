"""RenewalJourney: one durable workflow per expiring policy term.

It interprets `renewals.rules`: sleeps until each touchpoint's moment in the client's send window,
decides (gate, condition, portal check) whether the touchpoint goes out, and sends through activities.
Signals and updates bring in what happens meanwhile; the journey stops the moment the renewal is
secured, the client opts out, the policy is cancelled or the client refuses an operator.

Determinism: time only from `workflow.now()`, all I/O in activities, activities called by name so
this module imports nothing but the pure domain.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from itertools import groupby
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from renewals import search_attributes as sa
    from renewals.activity_io import (
        OperatorTaskReceipt,
        OperatorTaskRequest,
        OptOutRecord,
        PortalQuery,
        PortalStatus,
        RobotCallRequest,
        RobotCallResult,
        SendReceipt,
        SendRequest,
        StageRecord,
        SuppressionRecord,
    )
    from renewals.journey_api import (
        ENGAGEMENT_EVENTS,
        ROBOT_CONTACTS,
        TERMINAL_STAGES,
        EntryStatus,
        EventType,
        JourneyEvent,
        JourneyInput,
        JourneyStatus,
        NextTouchpoint,
        OperatorOutcome,
        OperatorOutcomeReport,
        ReceivedEvent,
        RobotOutcome,
        RobotOutcomeReport,
        Stage,
        TimelineEntry,
    )
    from renewals.models import Channel, Policy, channel_queue
    from renewals.rules import (
        OPERATOR_RULE,
        Condition,
        Touchpoint,
        gate_reason,
        segment_of,
        touchpoints_for,
    )
    from renewals.sendwindow import zone
    from renewals.templates import RenderedMessage, render

# Patch ids (`workflow.patched`): each names a change that running journeys must not see mid-way.
SAME_DAY_TOGETHER = "same-day-touchpoints-together"
FINISH_STOPS_SENDS = "finish-cancels-sends-in-flight"  # paid/opted out: a retrying send is cancelled
STAGE_WHEN_DONE = "stage-moves-only-when-done"  # a suppressed touchpoint does not move the stage
SEND_FAILED_ATTRIBUTE = "send-failed-search-attribute"  # SendFailed = true once a send has failed

SEND_RETRY = RetryPolicy(initial_interval=timedelta(seconds=5), maximum_interval=timedelta(minutes=10))
QUICK_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))
ACTIVITY_TIMEOUT = timedelta(seconds=30)
T = TypeVar("T")

# Progress only moves forward: a −17 e-mail after an operator hand-off does not make it "informing".
_PROGRESS = (Stage.SCHEDULED, Stage.INFORMING, Stage.ROBOT_CALLING, Stage.OPERATOR, Stage.FINAL_REMINDER)
_EVENT_STAGES = {
    EventType.PAYMENT_RECEIVED: Stage.PAID,
    EventType.RENEWED: Stage.RENEWED,
    EventType.OPT_OUT: Stage.OPTED_OUT,
    EventType.POLICY_CANCELLED: Stage.CANCELLED,
}
_MISSING_ADDRESS = {Channel.EMAIL: "no_email_address", Channel.VK: "no_vk_id", Channel.SMS: "no_phone"}


@workflow.defn(name="RenewalJourney")
class RenewalJourney:
    @workflow.init
    def __init__(self, journey: JourneyInput) -> None:
        self._policy = journey.policy
        self._window = journey.window
        self._tz = zone(journey.policy.client.timezone)
        self._id = workflow.info().workflow_id
        self._stage = Stage.SCHEDULED
        self._timeline: list[TimelineEntry] = []
        self._events: list[ReceivedEvent] = []
        self._next: NextTouchpoint | None = None
        self._draft = False
        self._quote = False
        self._engaged_by: EventType | None = None
        self._robot_stopped = False
        self._robot_calls = 0
        self._robot_outcomes: dict[str, RobotOutcome] = {}
        self._latest_robot_task: str | None = None
        self._operator_tasks: dict[str, bool] = {}  # task id → still open
        self._awaited_robot_task: str | None = None  # the call whose outcome today's wait is for
        self._handoff_owed: str | None = None  # a late robot contact: open an operator task soon

    # ---- the journey ---------------------------------------------------------------------------

    @workflow.run
    async def run(self, journey: JourneyInput) -> JourneyStatus:
        start_day = self._local_today()
        expires_on = self._policy.expires_on
        workflow.upsert_search_attributes(self._search_attributes())
        self._publish()
        if start_day > expires_on:
            self._finish(Stage.LAPSED, "started after the last day of cover")
        for _, same_day in groupby(touchpoints_for(self._policy), key=lambda tp: tp.day):
            group = list(same_day)
            if self._finished:
                break
            day = expires_on + timedelta(days=group[0].day)
            if day < start_day:
                for touchpoint in group:
                    await self._skip_past_day(touchpoint, start_day)
                continue
            if workflow.patched(SAME_DAY_TOGETHER):
                await self._run_day(group, day)
            else:  # journeys started before the patch keep their one-by-one history
                for touchpoint in group:
                    await self._run_when_due(touchpoint, day)
        if not self._finished:
            self._next = None
            self._show_details()
            end_of_cover = self._end_of_cover()
            while not self._finished and workflow.now() < end_of_cover:
                await self._settle_handoff()
                await self._wait(self._woken, end_of_cover, "until the last day of cover ends")
            if not self._finished:
                self._finish(Stage.LAPSED, "no payment or renewal by the end of cover")
        if self._stage is Stage.OPTED_OUT:
            await self._remember_opt_out()
        await workflow.execute_activity(
            "record_stage",
            StageRecord(
                journey_id=self._id,
                policy_number=self._policy.number,
                expires_on=expires_on,
                agent_id=self._policy.agent.id,
                product=self._policy.product.value,
                stage=self._stage.value,
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=QUICK_RETRY,
            summary="record the journey's outcome",
        )
        return self.status()

    async def _remember_opt_out(self) -> None:
        """Every address of an opted-out client joins the list checked at send time by all journeys."""
        client = self._policy.client
        await workflow.execute_activity(
            "record_opt_out",
            OptOutRecord(
                journey_id=self._id,
                addresses=[a for a in (client.phone, client.email, client.vk_id) if a],
                reason=self._opt_out_reason(),
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=QUICK_RETRY,
            summary="add the client to the do-not-contact list",
        )

    def _opt_out_reason(self) -> str:
        """Why the journey ended as opted out (its `finished: opted_out` note), not whatever arrived
        after it (a delivery report of a send winding down)."""
        finished = f"finished: {Stage.OPTED_OUT.value}"
        return next((e.detail for e in reversed(self._events) if e.type == finished and e.detail), "opt_out")

    async def _run_day(self, group: list[Touchpoint], day: date) -> None:
        """A day's touchpoints (the −30 e-mail, VK and SMS; the −17 e-mail and operator task) go out
        together at the window's opening: one timer and one workflow task instead of one each."""
        due_now = [tp for tp in group if not (tp.rule.channel is Channel.ROBOT_CALL and self._robot_stopped)]
        if not due_now:
            return
        due = self._window.due_moment(day, workflow.now(), self._tz, key=self._id)
        if not await self._sleep_until(due, due_now[0]):
            return
        # While it slept a late robot outcome may have stopped the calls.
        due_now = [
            tp for tp in due_now if not (tp.rule.channel is Channel.ROBOT_CALL and self._robot_stopped)
        ]
        if not due_now or await self._robot_day_missed(due_now, day):
            return
        first_new = len(self._timeline)
        await asyncio.gather(*(self._run_touchpoint(tp) for tp in due_now))
        order = {tp.key: index for index, tp in enumerate(due_now)}
        self._timeline[first_new:] = sorted(
            self._timeline[first_new:], key=lambda entry: order.get(entry.touchpoint, len(order))
        )

    async def _run_when_due(self, touchpoint: Touchpoint, day: date) -> None:
        """The pre-patch path: each touchpoint waits and runs on its own."""
        if self._finished:
            return
        if touchpoint.rule.channel is Channel.ROBOT_CALL and self._robot_stopped:
            return
        due = self._window.due_moment(day, workflow.now(), self._tz, key=self._id)
        if not await self._sleep_until(due, touchpoint):
            return
        if touchpoint.rule.channel is Channel.ROBOT_CALL and self._robot_stopped:
            return
        if not await self._robot_day_missed([touchpoint], day):
            await self._run_touchpoint(touchpoint)

    async def _robot_day_missed(self, group: list[Touchpoint], day: date) -> bool:
        """Робот Даша calls at most once a day and only on its own day: a call whose day's calling
        hours are over (late intake, a backlog) is not made up later; the series goes on tomorrow."""
        robot = [tp for tp in group if tp.rule.channel is Channel.ROBOT_CALL]
        if not robot or self._local_today() == day:
            return False
        await self._suppress(robot[0], "calling_window_closed", self._policy.client.phone)
        return True

    async def _skip_past_day(self, touchpoint: Touchpoint, start_day: date) -> None:
        """Late intake: a day already past is never sent; a daily series is noted once. The −17
        operator task is internal, not a message: a renewal-centre client taken in after −17 still
        gets an operator, at intake."""
        if touchpoint.rule.channel is Channel.OPERATOR_TASK:
            day = (start_day - self._policy.expires_on).days
            await self._open_operator_task(day, "поступил после −17: Робот Даша не звонил")
        elif touchpoint.day == touchpoint.rule.day:
            await self._suppress(touchpoint, "day_passed_before_intake", None)

    async def _sleep_until(self, due: datetime, touchpoint: Touchpoint) -> bool:
        """Sleep until `due`; True if the touchpoint should run, False if the journey finished."""
        while not self._finished:
            await self._settle_handoff()
            due = self._window.next_open_moment(max(due, workflow.now()), self._tz)
            if due <= workflow.now():
                return not self._finished
            self._next = NextTouchpoint(
                touchpoint=touchpoint.key, channel=touchpoint.rule.channel, due_at=due
            )
            self._publish()
            await self._wait(self._woken, due, f"{touchpoint.key} {touchpoint.rule.template}")
        return False

    def _woken(self) -> bool:
        return self._finished or self._handoff_owed is not None

    async def _settle_handoff(self) -> None:
        """Open the operator task a late robot outcome asked for (signal handlers cannot await)."""
        if self._handoff_owed is None or self._finished:
            return
        reason, self._handoff_owed = self._handoff_owed, None
        await self._open_operator_task((self._local_today() - self._policy.expires_on).days, reason)

    async def _wait(self, done: Callable[[], bool], until: datetime, summary: str) -> None:
        remaining = until - workflow.now()
        if remaining <= timedelta(0):
            return
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(done, timeout=remaining, timeout_summary=summary)

    async def _run_touchpoint(self, touchpoint: Touchpoint) -> None:
        rule = touchpoint.rule
        reason = await self._suppression_reason(touchpoint)
        if self._finished:
            if reason == "payment_received":  # the portal knew: say why −5 did not go out
                await self._suppress(touchpoint, reason, self._address(rule.channel))
            return
        if reason is not None:
            await self._suppress(touchpoint, reason, self._address(rule.channel))
            if rule.channel is Channel.ROBOT_CALL:
                self._robot_stopped = True
            if workflow.patched(STAGE_WHEN_DONE):
                return  # nothing happened: the stage tells operators what did
        elif rule.channel is Channel.ROBOT_CALL:
            await self._call_robot(touchpoint)
        elif rule.channel is Channel.OPERATOR_TASK:
            await self._open_operator_task(touchpoint.day, "Робот Даша прекратил обзвон (−17)")
        else:
            await self._send(touchpoint)
        self._advance(_stage_after(touchpoint))

    async def _suppression_reason(self, touchpoint: Touchpoint) -> str | None:
        """Why this touchpoint must not go out now, or None. Checked at the moment it is due."""
        gate = gate_reason(self._policy, segment_of(self._policy))
        if gate is not None:
            return gate
        condition = touchpoint.rule.condition
        if condition is Condition.FIRST_PROLONGATION_YEAR and not self._policy.first_prolongation_year:
            return "not_first_prolongation_year"
        if condition in (Condition.NO_DRAFT_QUOTE_OR_PAYMENT, Condition.NO_DRAFT_OR_PAYMENT):
            await self._ask_portal()
            if self._finished:
                return "payment_received"
            if self._draft:
                return "draft_exists"
            if self._quote and condition is Condition.NO_DRAFT_QUOTE_OR_PAYMENT:
                return "quote_exists"
        if condition is Condition.NOT_ENGAGED and self._engaged_by is not None:
            return f"client_engaged ({self._engaged_by.value})"
        if condition is Condition.NO_OPERATOR_TASK and self._operator_tasks:
            return "operator_task_already_opened"
        if touchpoint.rule.channel in _MISSING_ADDRESS and not self._address(touchpoint.rule.channel):
            return _MISSING_ADDRESS[touchpoint.rule.channel]
        if workflow.now() >= self._end_of_cover():
            return "cover_ended"
        return None

    async def _ask_portal(self) -> None:
        """The portal's view joins what signals told us; if it cannot answer before today's window
        closes, the signals alone decide (a −5 reminder too many beats a renewal lost)."""
        closing = self._window.closing(self._local_today(), self._tz)
        try:
            portal = await workflow.execute_activity(
                "check_portal",
                PortalQuery(policy_number=self._policy.number, expires_on=self._policy.expires_on),
                result_type=PortalStatus,
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                schedule_to_close_timeout=max(closing - workflow.now(), timedelta(minutes=1)),
                retry_policy=QUICK_RETRY,
                summary="ask Альфа-Полис for a draft, quote or payment",
            )
        except ActivityError as error:
            self._note("portal_unavailable", _failure_reason(error))
            return
        self._draft |= portal.draft
        self._quote |= portal.quote
        if portal.paid:
            self._note(EventType.PAYMENT_RECEIVED.value, "portal")
            self._finish(Stage.PAID, "payment seen in the agent portal")

    # ---- channels ------------------------------------------------------------------------------

    async def _send(self, touchpoint: Touchpoint) -> None:
        rule = touchpoint.rule
        recipient = self._address(rule.channel) or ""
        message = await self._render(touchpoint, recipient)
        if message is None:
            return
        request = SendRequest(
            journey_id=self._id,
            touchpoint=touchpoint.key,
            channel=rule.channel,
            template=rule.template,
            recipient=recipient,
            text=message.text,
            subject=message.subject,
            window=self._window,
            timezone=self._policy.client.timezone,
        )
        stoppable = workflow.patched(FINISH_STOPS_SENDS)
        try:
            receipt = await self._unless_finished(
                stoppable,
                workflow.start_activity(
                    "send_message",
                    request,
                    result_type=SendReceipt,
                    task_queue=channel_queue(workflow.info().task_queue, rule.channel),
                    start_to_close_timeout=ACTIVITY_TIMEOUT,
                    schedule_to_close_timeout=self._until_end_of_cover(),
                    retry_policy=SEND_RETRY,
                    cancellation_type=_cancellation(stoppable),
                    summary=f"{touchpoint.key}: {rule.template}",
                ),
            )
        except ActivityError as error:
            if _error_type(error) == "OptedOut":
                self._record(touchpoint, EntryStatus.SUPPRESSED, _failure_reason(error), recipient, None)
                self._finish(Stage.OPTED_OUT, "the address is on the do-not-contact list")
                return
            await self._fail(touchpoint, _failure_reason(error), recipient, message.text)
            return
        if receipt is None:
            await self._suppress(touchpoint, f"journey_finished ({self._stage.value})", recipient)
            return
        self._record(touchpoint, EntryStatus.SENT, None, recipient, message.text)

    async def _unless_finished(self, stoppable: bool, handle: workflow.ActivityHandle[T]) -> T | None:
        """Await a send or call; if the journey finishes meanwhile (paid, renewed, opted out,
        cancelled) while it still waits for a retry or the send window, cancel it: nothing more goes
        out. An attempt already talking to the provider completes (the activity does not heartbeat):
        if it went out its result counts; if it failed, the journey had ended and nothing went out.
        None: cancelled before it went out. `stoppable`: this journey has the patch."""
        cancelled = False
        if stoppable:
            await workflow.wait_condition(lambda: handle.done() or self._finished)
            if not handle.done():
                handle.cancel()
                cancelled = True
        try:
            return await handle
        except ActivityError as error:
            if cancelled or isinstance(error.cause, CancelledError):
                return None
            raise

    async def _call_robot(self, touchpoint: Touchpoint) -> None:
        phone = self._policy.client.phone
        message = await self._render(touchpoint, phone)
        if message is None:
            self._robot_stopped = True
            return
        self._robot_calls += 1
        today = self._local_today()
        stoppable = workflow.patched(FINISH_STOPS_SENDS)
        try:
            call = await self._unless_finished(
                stoppable,
                workflow.start_activity(
                    "place_robot_call",
                    RobotCallRequest(
                        journey_id=self._id,
                        touchpoint=touchpoint.key,
                        phone=phone,
                        script=message.text,
                        attempt=self._robot_calls,
                        not_after=self._window.closing(today, self._tz),
                    ),
                    result_type=RobotCallResult,
                    task_queue=channel_queue(workflow.info().task_queue, Channel.ROBOT_CALL),
                    start_to_close_timeout=ACTIVITY_TIMEOUT,
                    schedule_to_close_timeout=max(
                        self._window.closing(today, self._tz) - workflow.now(), timedelta(minutes=1)
                    ),
                    retry_policy=SEND_RETRY,
                    cancellation_type=_cancellation(stoppable),
                    summary=f"{touchpoint.key}: Робот Даша, call {self._robot_calls}",
                ),
            )
        except ActivityError as error:
            if _error_type(error) == "OptedOut":
                self._record(touchpoint, EntryStatus.SUPPRESSED, _failure_reason(error), phone, None)
                self._finish(Stage.OPTED_OUT, "the phone is on the do-not-contact list")
                return
            await self._fail(touchpoint, _failure_reason(error), phone, message.text)
            # A number the provider refuses stops the series; a day the provider could not serve
            # (calling hours over, an outage) does not: Робот Даша tries again tomorrow.
            self._robot_stopped = _is_permanent(error) and _error_type(error) != "CallingWindowClosed"
            return
        if call is None:
            await self._suppress(touchpoint, f"journey_finished ({self._stage.value})", phone)
            return
        self._latest_robot_task = call.task_id
        outcome = call.outcome
        if outcome is None:  # the provider reports by webhook: wait until today's calling hours end
            self._awaited_robot_task = call.task_id
            await self._wait(
                lambda: call.task_id in self._robot_outcomes or self._finished,
                self._window.closing(today, self._tz),
                "waiting for Робот Даша's outcome",
            )
            self._awaited_robot_task = None
            outcome = self._robot_outcomes.get(call.task_id, RobotOutcome.NO_ANSWER)
        self._record(touchpoint, EntryStatus.SENT, f"outcome: {outcome.value}", phone, message.text)
        if outcome is RobotOutcome.DO_NOT_CONTACT:
            self._finish(Stage.OPTED_OUT, "do-not-contact told to Робот Даша")
        elif outcome in ROBOT_CONTACTS:
            self._robot_stopped = True
            await self._open_operator_task(touchpoint.day, f"отклик на звонок Робота Даши: {outcome.value}")

    async def _open_operator_task(self, day: int, reason: str) -> None:
        """Hand the client to the renewal centre: at −17, or on the day Робот Даша made contact."""
        centre = self._policy.regional_centre
        touchpoint = Touchpoint(OPERATOR_RULE, day)
        if centre is None:
            await self._fail(touchpoint, "NoRenewalCentre: the policy has no regional centre", None, None)
            return
        message = await self._render(touchpoint, centre.id, reason)
        if message is None:
            return
        receipt = await workflow.execute_activity(
            "open_operator_task",
            OperatorTaskRequest(
                journey_id=self._id,
                touchpoint=touchpoint.key,
                policy_number=self._policy.number,
                centre_id=centre.id,
                reason=reason,
                text=message.text,
            ),
            result_type=OperatorTaskReceipt,
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=QUICK_RETRY,
            summary=f"operator task at {centre.name}",
        )
        self._operator_tasks[receipt.task_id] = True
        self._record(touchpoint, EntryStatus.SENT, reason, centre.id, message.text)
        self._advance(Stage.OPERATOR)

    async def _render(
        self, touchpoint: Touchpoint, recipient: str, reason: str = ""
    ) -> RenderedMessage | None:
        """Render, or record the touchpoint as failed: bad data must not stop the rest of the journey."""
        try:
            return render(touchpoint.rule.template, self._policy, reason)
        except ValueError as error:
            await self._fail(touchpoint, f"TemplateError: {error}", recipient, None)
            return None

    def _address(self, channel: Channel) -> str | None:
        client = self._policy.client
        return {
            Channel.SMS: client.phone,
            Channel.ROBOT_CALL: client.phone,
            Channel.EMAIL: client.email,
            Channel.VK: client.vk_id,
            Channel.OPERATOR_TASK: self._policy.regional_centre.id if self._policy.regional_centre else None,
        }[channel]

    # ---- the record ----------------------------------------------------------------------------

    async def _suppress(self, touchpoint: Touchpoint, reason: str, recipient: str | None) -> None:
        await self._keep(touchpoint, EntryStatus.SUPPRESSED, reason, recipient, None)

    async def _fail(
        self, touchpoint: Touchpoint, reason: str, recipient: str | None, text: str | None
    ) -> None:
        if workflow.patched(SEND_FAILED_ATTRIBUTE):  # findable in the UI: `SendFailed = true`
            workflow.upsert_search_attributes([sa.SEND_FAILED.value_set(True)])
        await self._keep(touchpoint, EntryStatus.FAILED, reason, recipient, text)

    async def _keep(
        self,
        touchpoint: Touchpoint,
        status: EntryStatus,
        reason: str,
        recipient: str | None,
        text: str | None,
    ) -> None:
        """A touchpoint that did not go out: into the timeline and the outbox's audit log."""
        self._record(touchpoint, status, reason, recipient, text)
        await workflow.execute_activity(
            "record_suppressed",
            SuppressionRecord(
                journey_id=self._id,
                touchpoint=touchpoint.key,
                channel=touchpoint.rule.channel,
                template=touchpoint.rule.template,
                recipient=recipient,
                status=status.value,
                reason=reason,
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=QUICK_RETRY,
            summary=f"{touchpoint.key}: {status.value} ({reason})",
        )

    def _record(
        self,
        touchpoint: Touchpoint,
        status: EntryStatus,
        reason: str | None,
        recipient: str | None,
        text: str | None,
    ) -> None:
        now = workflow.now()
        self._timeline.append(
            TimelineEntry(
                at=now,
                day=(now.astimezone(self._tz).date() - self._policy.expires_on).days,
                touchpoint=touchpoint.key,
                channel=touchpoint.rule.channel,
                status=status,
                reason=reason,
                template=touchpoint.rule.template,
                to=recipient,
                text=text,
            )
        )

    def _note(self, kind: str, detail: str | None) -> None:
        self._events.append(ReceivedEvent(at=workflow.now(), type=kind, detail=detail))

    # ---- stages --------------------------------------------------------------------------------

    @property
    def _finished(self) -> bool:
        return self._stage in TERMINAL_STAGES

    def _finish(self, stage: Stage, why: str) -> None:
        if self._finished:
            return
        self._stage = stage
        self._next = None
        self._note(f"finished: {stage.value}", why)
        self._publish()

    def _advance(self, stage: Stage) -> None:
        if self._finished or _PROGRESS.index(stage) <= _PROGRESS.index(self._stage):
            return
        self._stage = stage
        self._publish()

    def _publish(self) -> None:
        """Keep the Temporal UI truthful: stage search attribute and the current-details text."""
        workflow.upsert_search_attributes([sa.JOURNEY_STAGE.value_set(self._stage.value)])
        self._show_details()

    def _show_details(self) -> None:
        lines = [
            f"**Policy** {self._policy.number} ({self._policy.product.value}), "
            f"last day of cover {self._policy.expires_on:%d.%m.%Y}",
            f"**Stage** {self._stage.value}",
        ]
        if self._next is not None:
            local = self._next.due_at.astimezone(self._tz)
            lines.append(f"**Next** {self._next.touchpoint} at {local:%d.%m.%Y %H:%M %Z}")
        workflow.set_current_details("\n\n".join(lines))

    def _search_attributes(self) -> list[SearchAttributeUpdate[Any]]:
        policy = self._policy
        expires_at = datetime.combine(policy.expires_on, time(0), tzinfo=self._tz)
        return [
            sa.POLICY_NUMBER.value_set(policy.number),
            sa.PRODUCT.value_set(policy.product.value),
            sa.AGENT_ID.value_set(policy.agent.id),
            sa.RENEWAL_CENTRE.value_set(policy.regional_centre.id if policy.regional_centre else ""),
            sa.EXPIRES_ON.value_set(expires_at),
            sa.JOURNEY_STAGE.value_set(self._stage.value),
        ]

    def _local_today(self) -> date:
        return workflow.now().astimezone(self._tz).date()

    def _end_of_cover(self) -> datetime:
        return datetime.combine(self._policy.expires_on + timedelta(days=1), time(0), tzinfo=self._tz)

    def _until_end_of_cover(self) -> timedelta:
        return max(self._end_of_cover() - workflow.now(), timedelta(minutes=1))

    # ---- messages from outside -----------------------------------------------------------------

    @workflow.signal(name="event")
    def on_event(self, event: JourneyEvent) -> None:
        """Payment, draft, quote, renewal, engagement, opt-out or cancellation."""
        self._note(event.type.value, event.source)
        if self._finished:
            return
        if event.type in _EVENT_STAGES:
            self._finish(_EVENT_STAGES[event.type], f"{event.type.value} ({event.source or 'signal'})")
        elif event.type is EventType.DRAFT_CREATED:
            self._draft = True
        elif event.type is EventType.QUOTE_CREATED:
            self._quote = True
        elif event.type in ENGAGEMENT_EVENTS and self._engaged_by is None:
            self._engaged_by = event.type

    @workflow.signal(name="robot_outcome")
    def on_robot_outcome(self, report: RobotOutcomeReport) -> None:
        task_id = report.task_id or self._latest_robot_task
        self._note(f"robot_outcome: {report.outcome.value}", task_id)
        if task_id is not None:
            self._robot_outcomes[task_id] = report.outcome
        if task_id == self._awaited_robot_task or self._finished:
            return  # today's call: the waiting call applies it
        # A late outcome (after its day's calling hours) still counts: contact is contact.
        if report.outcome is RobotOutcome.DO_NOT_CONTACT:
            self._finish(Stage.OPTED_OUT, "do-not-contact told to Робот Даша")
        elif report.outcome in ROBOT_CONTACTS and not self._robot_stopped:
            self._robot_stopped = True
            self._handoff_owed = f"отклик на звонок Робота Даши: {report.outcome.value}"

    @workflow.update(name="operator_outcome")
    def on_operator_outcome(self, report: OperatorOutcomeReport) -> JourneyStatus:
        """A renewal-centre operator's result; the agent stays on the renewal on every path."""
        # A callback at a time keeps the task open: the operator records the real outcome later.
        self._operator_tasks[report.task_id] = report.outcome is OperatorOutcome.CALLBACK
        detail = f"task {report.task_id}" + (f": {report.note}" if report.note else "")
        self._note(f"operator_outcome: {report.outcome.value}", detail)
        if report.outcome is OperatorOutcome.REFUSED:
            self._finish(Stage.REFUSED, "the client refused the renewal to an operator")
        elif report.outcome is OperatorOutcome.DO_NOT_CONTACT:
            self._finish(Stage.OPTED_OUT, "do-not-contact told to an operator")
        return self.status()

    @on_operator_outcome.validator
    def _validate_operator_outcome(self, report: OperatorOutcomeReport) -> None:
        if report.task_id not in self._operator_tasks:
            raise ValueError(f"operator task {report.task_id} does not belong to journey {self._id}")
        if not self._operator_tasks[report.task_id]:
            raise ValueError(f"operator task {report.task_id} is already closed")

    @workflow.update(name="update_policy")
    def on_policy_update(self, policy: Policy) -> JourneyStatus:
        """New phone, e-mail, agent card or centre: later touchpoints use the new data."""
        self._policy = policy
        self._tz = zone(policy.client.timezone)
        self._note("policy_updated", None)
        workflow.upsert_search_attributes(self._search_attributes())
        return self.status()

    @on_policy_update.validator
    def _validate_policy_update(self, policy: Policy) -> None:
        current = self._policy
        if (policy.number, policy.expires_on) != (current.number, current.expires_on):
            raise ValueError(
                f"policy update for {policy.number} ending {policy.expires_on} does not match "
                f"journey {self._id} ({current.number} ending {current.expires_on})"
            )
        fixed = ("product", "product_code", "bank", "renewal_centre", "first_prolongation_year")
        changed = [name for name in fixed if getattr(policy, name) != getattr(current, name)]
        if changed:
            raise ValueError(
                f"{', '.join(changed)} cannot change within a policy term: they decide which touchpoints "
                "the journey has; cancel it and start a new one"
            )

    @workflow.query(name="status")
    def status(self) -> JourneyStatus:
        return JourneyStatus(
            workflow_id=self._id,
            policy_number=self._policy.number,
            stage=self._stage,
            next=self._next,
            timeline=list(self._timeline),
            events=list(self._events),
        )


def _cancellation(stoppable: bool) -> workflow.ActivityCancellationType:
    """Journeys with the patch wait for the provider's answer to a cancelled send, so what went out is
    recorded as sent; older ones keep the SDK's default."""
    if stoppable:
        return workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED
    return workflow.ActivityCancellationType.TRY_CANCEL


def _stage_after(touchpoint: Touchpoint) -> Stage:
    if touchpoint.rule.channel is Channel.ROBOT_CALL:
        return Stage.ROBOT_CALLING
    if touchpoint.rule.channel is Channel.OPERATOR_TASK:
        return Stage.OPERATOR
    if touchpoint.day == -5:
        return Stage.FINAL_REMINDER
    return Stage.INFORMING


def _is_permanent(error: ActivityError) -> bool:
    return isinstance(error.cause, ApplicationError) and error.cause.non_retryable


def _error_type(error: ActivityError) -> str | None:
    return error.cause.type if isinstance(error.cause, ApplicationError) else None


def _failure_reason(error: ActivityError) -> str:
    cause = error.cause
    if isinstance(cause, ApplicationError):
        return f"{cause.type or 'Error'}: {cause.message}"
    return f"{type(cause).__name__ if cause else 'ActivityError'}: {cause or error}"
