"""The gateway's configuration: credentials it checks, where it logs and calls back, which faults."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from renewals.journey_api import RobotOutcome

CHANNELS = ("sms", "vk", "email", "robot", "portal")


class FaultConfig(BaseModel):
    """Faults to inject; each request draws one number from `random.Random(seed)`, so a seeded run
    injects the same faults into the same sequence of requests every time."""

    model_config = ConfigDict(extra="forbid")

    error_rate: float = Field(0.0, ge=0, le=1)  # 5xx / the provider's "internal error"
    rate_limit_rate: float = Field(0.0, ge=0, le=1)  # 429 / the provider's rate-limit code
    timeout_rate: float = Field(0.0, ge=0, le=1)  # accept, then hang `hang_seconds` before answering
    # hang `hang_seconds` *before* accepting, then drop the request: a timeout that sent nothing
    stall_rate: float = Field(0.0, ge=0, le=1)
    hang_seconds: float = Field(30.0, ge=0)
    latency_seconds: float = Field(0.0, ge=0)  # added to every answer
    invalid_phones: list[str] = []  # always rejected as invalid numbers (SMS and robot)
    blocked_recipients: list[str] = []  # VK user ids that forbid messages; e-mails refused with 550
    insufficient_funds: bool = False  # SMS and robot answer "no funds"
    channels: list[str] = list(CHANNELS)  # which APIs the random faults apply to
    seed: int | None = None


class GatewayConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    log_path: Path | None = None  # the append-only JSONL message log; None keeps it in memory only
    # Credentials the gateway checks when set (None accepts anything).
    smsc_login: str | None = None
    smsc_password: str | None = None
    vk_token: str | None = None
    robot_api_key: str | None = None
    portal_token: str | None = None
    # Callbacks, off by default: delivery reports and robot outcomes in the JSON our webhook service
    # takes (`renewals.webhooks.payloads`), signed `X-Signature: sha256=<HMAC>` with the source's secret.
    sms_webhook_url: str | None = None  # e.g. http://127.0.0.1:8080/webhooks/sms
    sms_webhook_secret: str | None = None  # = the webhook service's secret for "sms"
    robot_webhook_url: str | None = None  # e.g. http://127.0.0.1:8080/webhooks/robot
    robot_webhook_secret: str | None = None  # = the webhook service's secret for "robot"
    robot_default_outcome: RobotOutcome = RobotOutcome.NO_ANSWER
    # Or the same callbacks in the providers' own formats (renewals/webhooks/native; issue 13): SMSC's
    # handler form with its md5 hash (`smsc_callback_key`), VK Callback API `message_reply` events for
    # each VK message (`vk_webhook_url`, `vk_callback_secret`, `vk_group_id`), the robot vendor's result
    # signed with `robot_webhook_secret`. Point the URLs at `/webhooks/native/<provider>`.
    callback_format: Literal["signed", "native"] = "signed"
    smsc_callback_key: str | None = None  # = RENEWALS_NATIVE_CALLBACKS__SMSC_KEY (md5)
    vk_webhook_url: str | None = None  # e.g. http://127.0.0.1:8080/webhooks/native/vk (native only)
    vk_callback_secret: str | None = None  # = RENEWALS_NATIVE_CALLBACKS__VK_SECRET
    vk_group_id: int = 1  # = the community the webhook service answers for
    # Like a real provider: report a moment later (the worker commits the send first, so the webhook
    # service finds the outbox row), and retry a callback the service did not take (404, 5xx, down).
    callback_delay_seconds: float = Field(0.0, ge=0)
    callback_attempts: int = Field(5, ge=1)
    faults: FaultConfig = FaultConfig()
