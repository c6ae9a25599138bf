"""How a renewal journey's touchpoints leave the workflow: the one send path every channel takes,
the operator tasks, and the audit of every touchpoint that did not go out.

Workflow code (deterministic): all I/O is in `activities.renewal.JourneyActivities`, called by method.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import NamedTuple, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from activities.renewal import JourneyActivities
    from renewals import activity_io
    from renewals.journey_api import EntryStatus, Stage
    from renewals.models import channel_queue
    from renewals.outbox import OPTED_OUT
    from renewals.rules import OPERATOR_RULE, Segment, Touchpoint, opt_out_ends_journey, opted_out_at_send
    from renewals.sendwindow import SendWindow
    from renewals.templates import TEMPLATES, RenderedMessage, render
from workflows.renewal_record import JourneyRecord
from workflows.retries import ACTIVITY_TIMEOUT, QUICK_RETRY, SEND_RETRY

T = TypeVar("T")

# A journey's end closes its operator tasks (journeys started before it left them open), and a
# cancellation request (the UI's «Request Cancellation», `renewals cancel`) is handled by the journey:
# its sends in flight cancelled, outcome `cancelled`, tasks closed, `record_stage` written.
CLOSE_TASKS_PATCH = "close-operator-tasks"
CANCEL_PATCH = "cancel-ends-journey"
# A listed e-mail or VK id stops that channel, not the journey (before: any listed address ended it).
CHANNEL_OPT_OUT_PATCH = "channel-only-opt-outs"
TASK_REFUSED_OPTED_OUT = "the phone an operator would call is on the do-not-contact list"

# The agent's card is read before a base SMS (patch id: journeys started before it read none). The
# portal gets a few short attempts; past the deadline the imported card's phone goes out.
AGENT_CARD_PATCH = "agent-card-phone"
AGENT_CARD_ATTEMPT = timedelta(seconds=10)
AGENT_CARD_DEADLINE = timedelta(seconds=30)


class Failed(NamedTuple):
    """A send that failed for good (already recorded as failed)."""

    error_type: str | None
    permanent: bool


class JourneySends:
    """A journey's outgoing side; the workflow decides what goes out, this makes it go out once."""

    def __init__(self, record: JourneyRecord) -> None:
        self._record = record
        self.tasks_requested = False  # an operator task was asked for: the end closes what is open
        # The moment the day's touchpoints were due (the journey's own, with the window's spread):
        # sent along so the worker's metrics measure lateness from it. Activity input only, no command.
        self.due_at: datetime | None = None

    async def deliver(
        self,
        touchpoint: Touchpoint,
        recipient: str,
        message: RenderedMessage,
        deadline: timedelta,
        summary: str,
        **request: object,
    ) -> activity_io.SendReceipt | Failed | None:
        """The one send path, every channel: the `send` activity on the channel's task queue (its
        provider's rate limit), retried until `deadline`. If the journey finishes meanwhile (paid,
        renewed, opted out, cancelled) while the send still waits for a retry or the window, it is
        cancelled: nothing more goes out. What did not go out is recorded here: None (opted out, or
        the journey finished first) or `Failed`; the caller records a `activity_io.SendReceipt`."""
        channel = touchpoint.rule.channel
        send = activity_io.SendRequest.model_validate(
            {
                "journey_id": self._record.id,
                "touchpoint": touchpoint.key,
                "channel": channel,
                "template": touchpoint.rule.template,
                "recipient": recipient,
                "text": message.text,
                "subject": message.subject,
                "due_at": self.due_at,
                **request,
            }
        )
        try:
            receipt = await self._unless_finished(
                workflow.start_activity_method(
                    JourneyActivities.send,
                    send,
                    task_queue=channel_queue(workflow.info().task_queue, channel),
                    start_to_close_timeout=ACTIVITY_TIMEOUT,
                    schedule_to_close_timeout=deadline,
                    retry_policy=SEND_RETRY,
                    # a cancelled send's provider answer is waited for: what went out is recorded as sent
                    cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                    summary=summary,
                )
            )
        except ActivityError as error:
            error_type = _error_type(error)
            if error_type == OPTED_OUT:
                self._record.record(
                    touchpoint, EntryStatus.SUPPRESSED, failure_reason(error), recipient, None
                )
                if not opt_out_ends_journey(channel) and workflow.patched(CHANNEL_OPT_OUT_PATCH):
                    return None  # that channel only: the other touchpoints go on
                self._record.finish(Stage.OPTED_OUT, opted_out_at_send(channel))
                return None
            await self.fail(touchpoint, failure_reason(error), recipient, message.text)
            return Failed(error_type, _is_permanent(error))
        if receipt is None:
            await self.suppress(touchpoint, f"journey_finished ({self._record.stage.value})", recipient)
        return receipt

    async def _unless_finished(self, handle: workflow.ActivityHandle[T]) -> T | None:
        """Await a send; if the journey finishes meanwhile, cancel it. An attempt already talking to
        the provider completes (the activity does not heartbeat): if it went out its result counts;
        if it failed, the journey had ended and nothing went out. None: cancelled before it went out."""
        try:
            await workflow.wait_condition(lambda: handle.done() or self._record.finished)
        except asyncio.CancelledError:  # the journey itself is being cancelled: nothing more goes out
            if workflow.patched(CANCEL_PATCH):
                handle.cancel()
            raise
        cancelled = not handle.done()
        if cancelled:
            handle.cancel()
        try:
            return await handle
        except ActivityError as error:
            if cancelled or isinstance(error.cause, CancelledError):
                return None
            raise

    async def open_operator_task(self, day: int, reason: str) -> str | None:
        """Hand the client to the renewal centre: at −17, or on the day Робот Даша made contact."""
        centre = self._record.policy.regional_centre
        touchpoint = Touchpoint(OPERATOR_RULE, day)
        if centre is None:
            await self.fail(touchpoint, "NoRenewalCentre: the policy has no regional centre", None, None)
            return None
        message = await self.render(touchpoint, centre.id, reason)
        if message is None:
            return None
        self.tasks_requested = True
        try:
            receipt = await workflow.execute_activity_method(
                JourneyActivities.open_operator_task,
                activity_io.OperatorTaskRequest(
                    journey_id=self._record.id,
                    touchpoint=touchpoint.key,
                    policy_number=self._record.policy.number,
                    centre_id=centre.id,
                    reason=reason,
                    text=message.text,
                    phone=self._record.policy.client.phone,
                ),
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=QUICK_RETRY,
                summary=f"operator task at {centre.name}",
            )
        except ActivityError as error:
            await self._task_refused(touchpoint, centre.id, error)
            return None
        self._record.record(touchpoint, EntryStatus.SENT, reason, centre.id, message.text)
        self._record.advance(Stage.OPERATOR)
        return receipt.task_id

    async def render(
        self, touchpoint: Touchpoint, recipient: str, reason: str = ""
    ) -> RenderedMessage | None:
        """Render, or record the touchpoint as failed: bad data must not stop the rest of the journey.
        A base SMS that quotes the agent's phone first reads the agent's card in Альфа-Полис, so the
        text says the phone current at sending (journeys started before this read none)."""
        if _quotes_agent_phone(touchpoint) and workflow.patched(AGENT_CARD_PATCH):
            await self._current_agent_card()
        try:
            return render(touchpoint.rule.template, self._record.policy, reason)
        except ValueError as error:
            await self.fail(touchpoint, f"TemplateError: {error}", recipient, None)
            return None

    async def _current_agent_card(self) -> None:
        """Take the agent's phone from their card in Альфа-Полис into the journey's policy (later
        touchpoints and the status see it too). The imported card stays when the portal cannot answer
        within `AGENT_CARD_DEADLINE` (noted), does not know the agent or gives no usable phone."""
        record = self._record
        agent = record.policy.agent
        try:
            answer = await workflow.execute_activity_method(
                JourneyActivities.current_agent_card,
                activity_io.AgentCardQuery(agent_id=agent.id),
                start_to_close_timeout=AGENT_CARD_ATTEMPT,
                schedule_to_close_timeout=AGENT_CARD_DEADLINE,
                retry_policy=QUICK_RETRY,
                summary="read the agent's card in Альфа-Полис",
            )
        except ActivityError as error:
            record.note("agent_card_unavailable", failure_reason(error))
            return
        if answer.phone is None or answer.phone == agent.phone:
            return
        card = agent.model_copy(update={"phone": answer.phone})
        record.replace_policy(record.policy.model_copy(update={"agent": card}))
        record.note("agent_card_updated", "the agent's phone from Альфа-Полис")

    async def ask_portal(self, window: SendWindow) -> activity_io.PortalStatus | None:
        """Альфа-Полис's view of the renewal; None (noted) if it cannot answer before today's window
        closes: then the signals alone decide (a −5 reminder too many beats a renewal lost)."""
        record = self._record
        closing = window.closing(record.local_today(), record.tz)
        try:
            return await workflow.execute_activity_method(
                JourneyActivities.check_portal,
                activity_io.PortalQuery(
                    policy_number=record.policy.number, expires_on=record.policy.expires_on
                ),
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                schedule_to_close_timeout=max(closing - workflow.now(), timedelta(minutes=1)),
                retry_policy=QUICK_RETRY,
                summary="ask Альфа-Полис for a draft, quote or payment",
            )
        except ActivityError as error:
            record.note("portal_unavailable", failure_reason(error))
            return None

    async def _task_refused(self, touchpoint: Touchpoint, centre_id: str, error: ActivityError) -> None:
        """No task opened: the client's phone is on the do-not-contact list (the journey ends as opted
        out, as a send would) or the journey had ended; anything else fails the journey as before."""
        error_type = _error_type(error)
        if error_type not in (OPTED_OUT, "JourneyEnded"):
            raise error
        await self.suppress(touchpoint, failure_reason(error), centre_id)
        if error_type == OPTED_OUT:
            self._record.finish(Stage.OPTED_OUT, TASK_REFUSED_OPTED_OUT)

    async def close(self) -> None:
        """The journey's end: its operator tasks still open close with its outcome as the reason; an
        opted-out client's every address joins the list checked at send time by all journeys; the
        outcome goes to the journeys table (reports, the funnel)."""
        record, policy = self._record, self._record.policy
        if self.tasks_requested and workflow.patched(CLOSE_TASKS_PATCH):
            await workflow.execute_activity_method(
                JourneyActivities.close_operator_tasks,
                activity_io.OperatorTasksClosing(
                    journey_id=record.id, stage=record.stage.value, reason=record.finish_reason()
                ),
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=QUICK_RETRY,
                summary=f"close the operator tasks: the journey is {record.stage.value}",
            )
        if record.stage is Stage.OPTED_OUT:
            client = policy.client
            await workflow.execute_activity_method(
                JourneyActivities.record_opt_out,
                activity_io.OptOutRecord(
                    journey_id=record.id,
                    addresses=[a for a in (client.phone, client.email, client.vk_id) if a],
                    reason=record.opt_out_reason(),
                ),
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=QUICK_RETRY,
                summary="add the client to the do-not-contact list",
            )
        await workflow.execute_activity_method(
            JourneyActivities.record_stage,
            activity_io.StageRecord(
                journey_id=record.id,
                policy_number=policy.number,
                expires_on=policy.expires_on,
                agent_id=policy.agent.id,
                product=policy.product.value,
                stage=record.stage.value,
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=QUICK_RETRY,
            summary="record the journey's outcome",
        )

    # ---- touchpoints that did not go out --------------------------------------------------------

    async def suppress(self, touchpoint: Touchpoint, reason: str, recipient: str | None) -> None:
        await self._keep(touchpoint, EntryStatus.SUPPRESSED, reason, recipient, None)

    async def fail(
        self, touchpoint: Touchpoint, reason: str, recipient: str | None, text: str | None
    ) -> None:
        self._record.mark_send_failed()
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
        self._record.record(touchpoint, status, reason, recipient, text)
        await workflow.execute_activity_method(
            JourneyActivities.record_suppressed,
            activity_io.SuppressionRecord(
                journey_id=self._record.id,
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


def _quotes_agent_phone(touchpoint: Touchpoint) -> bool:
    """A base-informing SMS whose text gives the agent's phone (the seed asks agents to keep it
    current in Альфа-Полис for these texts)."""
    rule = touchpoint.rule
    return rule.segment is Segment.BASE and "{agent_phone}" in TEMPLATES[rule.template].text


def _is_permanent(error: ActivityError) -> bool:
    return isinstance(error.cause, ApplicationError) and error.cause.non_retryable


def _error_type(error: ActivityError) -> str | None:
    return error.cause.type if isinstance(error.cause, ApplicationError) else None


def failure_reason(error: ActivityError) -> str:
    cause = error.cause
    if isinstance(cause, ApplicationError):
        return f"{cause.type or 'Error'}: {cause.message}"
    return f"{type(cause).__name__ if cause else 'ActivityError'}: {cause or error}"
