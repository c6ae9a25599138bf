"""The renewal journey's public interface: its names on the wire, and the shapes that cross the
workflow boundary (input, signals, updates, queries, result), as pydantic models the
`pydantic_data_converter` carries as JSON.

Callers outside `workflows/` (intake, webhooks, operators) use the name constants below with these
models, so the domain package never imports the workflow; `workflows/renewal.py` declares its
handlers with the same constants.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from renewals.models import Channel, Policy
from renewals.sendwindow import SendWindow

# Names on the wire: the workflow type and its messages.
WORKFLOW_TYPE = "RenewalJourney"
EVENT_SIGNAL = "event"  # JourneyEvent: payment, draft, quote, renewal, engagement, opt-out, cancellation
ROBOT_OUTCOME_SIGNAL = "robot_outcome"  # RobotOutcomeReport from Робот Даша's provider
OPERATOR_OUTCOME_UPDATE = "operator_outcome"  # OperatorOutcomeReport → JourneyStatus (validated)
POLICY_UPDATE = "update_policy"  # Policy → JourneyStatus (validated: same term, same touchpoints)
STATUS_QUERY = "status"  # → JourneyStatus


class Stage(StrEnum):
    SCHEDULED = "scheduled"  # started, nothing due yet
    INFORMING = "informing"  # base SMS or the renewal centre's −30 messages went out
    ROBOT_CALLING = "robot_calling"  # Робот Даша is calling (−29…−18)
    OPERATOR = "operator"  # a renewal-centre operator has the client
    FINAL_REMINDER = "final_reminder"  # the −5 touchpoint is behind us; waiting for the renewal
    PAID = "paid"
    RENEWED = "renewed"
    OPTED_OUT = "opted_out"
    CANCELLED = "cancelled"
    REFUSED = "refused"  # the client told an operator they will not renew
    LAPSED = "lapsed"  # the last day of cover passed without a payment or renewal signal


TERMINAL_STAGES = frozenset(
    {Stage.PAID, Stage.RENEWED, Stage.OPTED_OUT, Stage.CANCELLED, Stage.REFUSED, Stage.LAPSED}
)
SECURED_STAGES = frozenset({Stage.PAID, Stage.RENEWED})


class EventType(StrEnum):
    PAYMENT_RECEIVED = "payment_received"
    DRAFT_CREATED = "draft_created"
    QUOTE_CREATED = "quote_created"
    RENEWED = "renewed"
    EMAIL_OPENED = "email_opened"
    VK_READ = "vk_read"
    SMS_REPLIED = "sms_replied"
    OPT_OUT = "opt_out"
    POLICY_CANCELLED = "policy_cancelled"
    # Delivery reports from the providers: noted in the journey's events (the funnel counts them).
    MESSAGE_DELIVERED = "message_delivered"
    MESSAGE_UNDELIVERED = "message_undelivered"
    # The client forbade the community's VK messages (VK Callback API `message_deny`): noted; VK is
    # opted out by the do-not-contact list, the other channels go on.
    VK_DENIED = "vk_denied"


ENGAGEMENT_EVENTS = frozenset({EventType.EMAIL_OPENED, EventType.VK_READ, EventType.SMS_REPLIED})


class RobotOutcome(StrEnum):
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    AGREED = "agreed"
    REFUSED = "refused"
    CALLBACK = "callback"
    DO_NOT_CONTACT = "do_not_contact"


ROBOT_CONTACTS = frozenset({RobotOutcome.AGREED, RobotOutcome.REFUSED, RobotOutcome.CALLBACK})


class OperatorOutcome(StrEnum):
    REACHED_RENEWING = "reached_renewing"
    REFUSED = "refused"
    CALLBACK = "callback"
    WRONG_NUMBER = "wrong_number"
    DO_NOT_CONTACT = "do_not_contact"


class EntryStatus(StrEnum):
    SENT = "sent"
    SUPPRESSED = "suppressed"
    FAILED = "failed"


class _Frozen(BaseModel):
    # hide_input_in_errors: a payload that fails to validate is logged by the SDK without its values.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


class Holdout(_Frozen):
    """An experiment that holds this journey's client out of some touchpoints (renewals/experiments):
    decided at the start and carried in the input, so a replay or a running journey never changes arm."""

    experiment: str
    templates: tuple[str, ...]  # the rules' templates not sent; recorded `suppressed: holdout (<experiment>)`


class JourneyInput(_Frozen):
    policy: Policy
    window: SendWindow = Field(default_factory=SendWindow)
    holdouts: tuple[Holdout, ...] = ()


class JourneyEvent(_Frozen):
    """A fact from outside: a payment, a draft in the portal, an opened e-mail, an opt-out…"""

    type: EventType
    source: str | None = None  # who told us: "portal", "smsc", "vk", "operator:42"…
    at: datetime | None = None  # when it happened, if the source says; the journey stamps receipt


class RobotOutcomeReport(_Frozen):
    outcome: RobotOutcome
    task_id: str | None = None  # the call the outcome belongs to; None means the latest call


class OperatorOutcomeReport(_Frozen):
    task_id: str
    outcome: OperatorOutcome
    note: str | None = None
    callback_at: datetime | None = None


class TimelineEntry(_Frozen):
    at: datetime
    day: int  # local date of `at` minus the last day of cover
    touchpoint: str
    channel: Channel
    status: EntryStatus
    reason: str | None = None  # why suppressed/failed; for a robot call, its outcome
    template: str
    to: str | None = None
    text: str | None = None


class ReceivedEvent(_Frozen):
    at: datetime
    type: str
    detail: str | None = None


class NextTouchpoint(_Frozen):
    touchpoint: str
    channel: Channel
    due_at: datetime


class JourneyStatus(_Frozen):
    workflow_id: str
    policy_number: str
    stage: Stage
    next: NextTouchpoint | None
    timeline: list[TimelineEntry]
    events: list[ReceivedEvent]
