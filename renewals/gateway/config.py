"""The gateway's configuration: credentials it checks, where it logs and calls back, which faults."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from renewals.journey import RobotOutcome

CHANNELS = ("sms", "vk", "email", "robot", "portal")


class FaultConfig(BaseModel):
    """Faults to inject; each request draws one number from `random.Random(seed)`, so a seeded run
    injects the same faults into the same sequence of requests every time."""

    model_config = ConfigDict(extra="forbid")

    error_rate: float = Field(0.0, ge=0, le=1)  # 5xx / the provider's "internal error"
    rate_limit_rate: float = Field(0.0, ge=0, le=1)  # 429 / the provider's rate-limit code
    timeout_rate: float = Field(0.0, ge=0, le=1)  # accept, then hang `hang_seconds` before answering
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
    # Callbacks, off by default: SMSC-shaped delivery reports and robot outcomes.
    sms_webhook_url: str | None = None
    robot_webhook_url: str | None = None
    robot_default_outcome: RobotOutcome = RobotOutcome.NO_ANSWER
    faults: FaultConfig = FaultConfig()
