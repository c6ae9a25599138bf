"""Activity inputs and results: one pydantic model in, one out, for every activity.

Every request carries `journey_id` and `touchpoint`; with the channel they make the idempotency key
that the outbox, the providers and the operator-task table deduplicate on.
"""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict

from renewals.journey_api import RobotOutcome
from renewals.models import Channel
from renewals.sendwindow import SendWindow


class _Contract(BaseModel):
    # hide_input_in_errors: a payload that fails to validate is logged by the SDK without its values.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


def dedup_key(journey_id: str, touchpoint: str, channel: Channel) -> str:
    return f"{journey_id}:{touchpoint}:{channel.value}"


class SendRequest(_Contract):
    """One message or robot call, for the one send activity whatever the channel.

    `text` is the message (for Робот Даша, the call's script); `recipient` the address (phone, e-mail,
    VK id). A message waits for the client's send `window` on a retry; a robot call instead has
    `not_after` (the end of today's calling hours) and its `attempt` number in the series.
    """

    journey_id: str
    touchpoint: str
    channel: Channel
    template: str
    recipient: str
    text: str
    subject: str | None = None
    # The client's send window: a retry that comes due outside it waits for the next opening.
    window: SendWindow | None = None
    timezone: str | None = None
    not_after: datetime | None = None  # no send after this moment (a robot call: today's calling hours)
    attempt: int = 1  # a robot call's number in its series (the provider's script may depend on it)
    due_at: datetime | None = None  # when the journey's touchpoint was due: the metrics' lateness
    # Set by the send activity, not the workflow: this key's outbox row existed before this attempt
    # (a retry, or a crashed worker's send recovered), so the provider may already have the message
    # and should reconcile (SMSC: status query) before sending; a first attempt sends at once.
    resumed: bool = False

    @property
    def dedup_key(self) -> str:
        return dedup_key(self.journey_id, self.touchpoint, self.channel)


class SendReceipt(_Contract):
    provider: str
    provider_message_id: str
    outcome: RobotOutcome | None = None  # a robot call answered at once; None: it comes by webhook


class SuppressionRecord(_Contract):
    """A touchpoint that did not go out, and why: kept in the outbox as the audit of every decision."""

    journey_id: str
    touchpoint: str
    channel: Channel
    template: str
    recipient: str | None
    status: str  # "suppressed" or "failed"
    reason: str


class OptOutRecord(_Contract):
    """A client's do-not-contact: every address of theirs joins the send-time opt-out list."""

    journey_id: str
    addresses: list[str]
    reason: str


class OperatorTaskRequest(_Contract):
    journey_id: str
    touchpoint: str
    policy_number: str
    centre_id: str
    reason: str
    text: str
    # The phone the operator would call: a listed one opens no task (issue 13, helper F).
    phone: str | None = None

    @property
    def dedup_key(self) -> str:
        return dedup_key(self.journey_id, self.touchpoint, Channel.OPERATOR_TASK)


class OperatorTaskReceipt(_Contract):
    task_id: str


class PortalQuery(_Contract):
    policy_number: str
    expires_on: date


class PortalStatus(_Contract):
    """The agent portal's view of the renewal: «Проект», «котировка», «оплата»."""

    draft: bool = False
    quote: bool = False
    paid: bool = False


# ---- the agent's card in Альфа-Полис (issue 13, helper A: the agent's phone in the texts) ---------


class AgentCardQuery(_Contract):
    """Which agent's card to read before a base SMS quotes the agent's phone."""

    agent_id: str


class AgentCardAnswer(_Contract):
    """The phone the agent's card in the portal gives now (E.164), or None: the portal does not know
    the agent, the card has no phone or an unusable one (`note` says which), or there is no portal
    (recording channels) — the journey then keeps the imported card's phone."""

    phone: str | None = None
    note: str | None = None


# ---- a journey's end closes its operator tasks (issue 13, helper F) ------------------------------


class OperatorTasksClosing(_Contract):
    """The journey ended: its operator tasks still open close, with its outcome as the reason."""

    journey_id: str
    stage: str
    reason: str


class StageRecord(_Contract):
    journey_id: str
    policy_number: str
    expires_on: date
    agent_id: str
    product: str
    stage: str
