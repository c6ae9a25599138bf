"""What each source posts. Every callback has its own `event_id` (the provider's delivery id) and
names its journey by one of: `message_id` (the provider's id of our message, as the outbox stores it
in `provider_message_id`, or our own outbox key), `journey_id`, or `policy_number` (+ `expires_on`
when a number has several terms)."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from renewals.journey_api import RobotOutcome


class Callback(BaseModel):
    model_config = ConfigDict(extra="ignore")  # providers add fields of their own

    event_id: str = Field(min_length=1, max_length=200, description="the provider's id of this callback")
    message_id: str | None = Field(
        None,
        description="the provider's id of our message (SMSC id, e-mail Message-ID, VK message id) or our key",
    )
    journey_id: str | None = None
    policy_number: str | None = None
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
    type: Literal["delivered", "read", "reply"]


class RobotCallback(Callback):
    task_id: str | None = Field(None, description="the call the outcome belongs to")
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
    status: Literal["accepted", "duplicate", "journey_finished"]
    journey_id: str
    signal: str | None = None
