"""What each source posts. Every callback has its own `event_id` (the provider's delivery id) and
names its journey by one of: `message_id` (the provider's id of our message, as the outbox stores it
in `provider_message_id`, or our own outbox key), `journey_id`, or `policy_number` (+ `expires_on`
when a number has several terms)."""

from __future__ import annotations

import unicodedata
from datetime import date
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from renewals.journey_api import RobotOutcome

MAX_ID = 200  # the longest id of any source (an e-mail Message-ID is the longest seen), as stored


def _plain_id(value: str) -> str:
    """An id is printable text: not blank, no control or format characters (they would split log
    lines, hide in the UI or make two ids look alike); surrounding spaces are dropped."""
    value = value.strip()
    if not value:
        raise ValueError("blank id")
    if any(unicodedata.category(c)[0] == "C" for c in value):
        raise ValueError("id with a control character")
    return value


Id = Annotated[str, Field(min_length=1, max_length=MAX_ID), AfterValidator(_plain_id)]
PolicyNumber = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_plain_id)]


def shown(value: str, limit: int = 40) -> str:
    """An id as an answer or a log line repeats it: never whole when it is long."""
    return value if len(value) <= limit else value[: limit - 1] + "…"


class Callback(BaseModel):
    model_config = ConfigDict(extra="ignore")  # providers add fields of their own

    event_id: Id = Field(description="the provider's id of this callback")
    message_id: Id | None = Field(
        None,
        description="the provider's id of our message (SMSC id, e-mail Message-ID, VK message id) or our key",
    )
    journey_id: Annotated[str, Field(max_length=160), AfterValidator(_plain_id)] | None = None
    policy_number: PolicyNumber | None = None
    expires_on: date | None = None

    @model_validator(mode="after")
    def _names_a_journey(self) -> Callback:
        if not (self.message_id or self.journey_id or self.policy_number):
            raise ValueError("name the journey: message_id, journey_id or policy_number")
        return self


class SmsCallback(Callback):
    type: Literal["delivered", "undelivered", "reply"]
    text: str | None = Field(None, description="the client's reply; STOP (or СТОП) means opt-out")


class EmailCallback(Callback):
    type: Literal["delivered", "bounced", "opened"]


class VkCallback(Callback):
    type: Literal["delivered", "read", "reply", "denied"]


class RobotCallback(Callback):
    task_id: Id | None = Field(None, description="the call the outcome belongs to")
    outcome: RobotOutcome


class PortalCallback(Callback):
    type: Literal["draft_created", "quote_created", "payment_received", "renewed"]


# Each source's callback model: the service's routes `/webhooks/<source>`, in this order.
CALLBACKS: dict[str, type[Callback]] = {
    "sms": SmsCallback,
    "email": EmailCallback,
    "vk": VkCallback,
    "robot": RobotCallback,
    "portal": PortalCallback,
}


class WebhookResult(BaseModel):
    status: Literal["accepted", "duplicate", "journey_finished", "ignored"]  # ignored: no journey's message
    journey_id: str
    signal: str | None = None
