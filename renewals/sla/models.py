"""What an application journey is made of, as data: statuses, allowed moves, calendar, clocks, views.

These shapes cross the workflow boundary (input, signals, updates, query, result), so they are
pydantic models the `pydantic_data_converter` carries as JSON.
"""

from __future__ import annotations

import re
from datetime import datetime, time
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from renewals.sendwindow import TimeZoneName


class SlaStatus(StrEnum):
    """What the partner sees in the cabinet. Each is entered by one event of the same name."""

    SUBMITTED = "submitted"
    ACKNOWLEDGED = "acknowledged"  # first human reaction (the urgent channel's answer)
    CALCULATED = "calculated"
    DATA_CHECKED = "data_checked"
    DOCUMENTS_RECEIVED = "documents_received"
    SIGNED = "signed"
    PAID = "paid"
    ISSUED = "issued"
    CANCELLED = "cancelled"


# The forward order of the process; `cancelled` may follow any status that is not terminal.
ORDER: tuple[SlaStatus, ...] = (
    SlaStatus.SUBMITTED,
    SlaStatus.ACKNOWLEDGED,
    SlaStatus.CALCULATED,
    SlaStatus.DATA_CHECKED,
    SlaStatus.DOCUMENTS_RECEIVED,
    SlaStatus.SIGNED,
    SlaStatus.PAID,
    SlaStatus.ISSUED,
)
TERMINAL = frozenset({SlaStatus.ISSUED, SlaStatus.CANCELLED})


def rank(status: SlaStatus) -> int:
    """Position in the process; cancelled ranks after everything so it stops every clock."""
    return len(ORDER) if status is SlaStatus.CANCELLED else ORDER.index(status)


def transition_error(current: SlaStatus, new: SlaStatus) -> str | None:
    """Why `current → new` is refused, or None. Steps may be skipped, never reversed; a policy is
    issued only after payment."""
    if current in TERMINAL:
        return f"the application is already {current.value}; {new.value} is not possible"
    if new is SlaStatus.CANCELLED:
        return None
    if rank(new) <= rank(current):
        return f"{current.value} → {new.value} goes backwards or repeats a status"
    if new is SlaStatus.ISSUED and current is not SlaStatus.PAID:
        return f"{current.value} → issued: a policy is issued only after payment (paid)"
    return None


class Duty(StrEnum):
    """The agency's internal SLA: who answers the client, collects documents, takes the payment."""

    CLIENT_CONTACT = "client_contact"
    DOCUMENTS = "documents"
    PAYMENT = "payment"


DUTY_OF_STATUS: dict[SlaStatus, Duty] = {
    SlaStatus.SUBMITTED: Duty.CLIENT_CONTACT,
    SlaStatus.ACKNOWLEDGED: Duty.CLIENT_CONTACT,
    SlaStatus.CALCULATED: Duty.DOCUMENTS,
    SlaStatus.DATA_CHECKED: Duty.DOCUMENTS,
    SlaStatus.DOCUMENTS_RECEIVED: Duty.DOCUMENTS,
    SlaStatus.SIGNED: Duty.PAYMENT,
    SlaStatus.PAID: Duty.PAYMENT,
    SlaStatus.ISSUED: Duty.CLIENT_CONTACT,
    SlaStatus.CANCELLED: Duty.CLIENT_CONTACT,
}

# Where an application waiting in a status is stuck: the step that has to happen next.
BLOCKER_OF_STATUS: dict[SlaStatus, str] = {
    SlaStatus.SUBMITTED: "calculation",
    SlaStatus.ACKNOWLEDGED: "calculation",
    SlaStatus.CALCULATED: "check",
    SlaStatus.DATA_CHECKED: "documents",
    SlaStatus.DOCUMENTS_RECEIVED: "signature",
    SlaStatus.SIGNED: "payment",
    SlaStatus.PAID: "sending",
}


class SupportCalendar(BaseModel):
    """The support schedule: daily hours on working days of the Russian production calendar."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timezone: TimeZoneName = "Europe/Moscow"
    open: time = time(9, 0)
    close: time = time(18, 0)

    @model_validator(mode="after")
    def _opens_before_closing(self) -> SupportCalendar:
        if self.open >= self.close:
            raise ValueError("open must be earlier than close")
        return self


class ClockSpec(BaseModel):
    """One SLA clock as data: when it starts and stops, its warning and breach, how time counts."""

    model_config = ConfigDict(frozen=True)

    name: str
    starts_at: SlaStatus
    stops_at: SlaStatus | None  # None: the first later status change stops it
    warn_minutes: int | None = Field(default=None, gt=0)
    limit_minutes: int = Field(gt=0)
    business_time: bool = True
    urgent_only: bool = False

    def stopped_by(self, status: SlaStatus) -> bool:
        if self.stops_at is None or status is SlaStatus.CANCELLED:
            return True
        return rank(status) >= rank(self.stops_at)


class Responsible(BaseModel):
    """Named people per duty; a missing one is itself a finding of the escalation checklist."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    client_contact: str | None = None
    documents: str | None = None
    payment: str | None = None

    def for_duty(self, duty: Duty) -> str | None:
        value: str | None = getattr(self, duty.value)
        return value


class ApplicationInput(BaseModel):
    """Everything the journey needs; settings are resolved before the start, never read inside."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(min_length=1)
    partner: str = Field(min_length=1)
    urgent: bool = False
    calendar: SupportCalendar = SupportCalendar()
    clocks: list[ClockSpec]
    responsible: Responsible = Responsible()
    submitted_by: str = "partner"
    submitted_at: datetime | None = None  # when the partner submitted; the journey's start if None


SLA_ID_PREFIX = "sla-"  # every partner application's workflow id (and its notices' outbox rows) starts so


def application_workflow_id(partner: str, application_id: str) -> str:
    """Deterministic and readable: `sla-<partner>-<application>`, normalised to [a-z0-9-]."""

    def norm(text: str) -> str:
        return re.sub(r"[^0-9a-zа-яё]+", "-", text.lower()).strip("-") or "x"

    return f"{SLA_ID_PREFIX}{norm(partner)}-{norm(application_id)}"


class StatusChange(BaseModel):
    """A status change from the partner cabinet API or the CLI: who and why."""

    model_config = ConfigDict(frozen=True)

    status: SlaStatus
    by: str = "partner"
    reason: str | None = None
    # When it happened, if the sender knows (a cabinet event delivered late). The journey clamps it
    # between the previous change and its own clock: history is never rewritten, the future never used.
    at: datetime | None = None


class EscalationAnswer(BaseModel):
    """Checklist step 4: the answer an operator got for a breached clock, recorded with its time.
    Without `clock`, the oldest escalation that awaits an answer gets it (the CLI's default)."""

    model_config = ConfigDict(frozen=True)

    clock: str | None = None
    by: str
    text: str


class CloseRequest(BaseModel):
    """End the journey without a final status (an abandoned application, the end of a simulation)."""

    model_config = ConfigDict(frozen=True)

    by: str
    reason: str


# Where a notice goes. An urgent application's warnings and hand-overs use the dedicated urgent line
# (the seed: "срочные случаи — отдельный канал с реакцией 10–15 минут"), everything else the person
# responsible for the stage; the process flag goes to the partner's account manager.
RESPONSIBLE_CHANNEL = "responsible"
URGENT_CHANNEL = "urgent"
PARTNER_CHANNEL = "partner"


class EscalationStepName(StrEnum):
    WARNING = "warning"  # before the breach: not a checklist step, but on the same timeline
    CHECK_DATA_AND_PAYMENT = "check_data_and_payment"
    LOCATE_BLOCKER = "locate_blocker"
    HAND_OVER = "hand_over"
    RECORD_ANSWER = "record_answer"
    RAISE_PROCESS_FLAG = "raise_process_flag"


class EscalationRequest(BaseModel):
    """The input of every automatic checklist step: the application as it stands at the breach."""

    model_config = ConfigDict(frozen=True)

    application_id: str
    partner: str
    timezone: str
    clock: str
    status: SlaStatus
    due: datetime
    paid: bool
    responsible: Responsible
    breach_number: int
    urgent: bool = False  # an urgent application's notices go through the urgent line

    @property
    def dedup_key(self) -> str:
        return f"{self.partner}/{self.application_id}/{self.clock}"

    @property
    def channel(self) -> str:
        return URGENT_CHANNEL if self.urgent else RESPONSIBLE_CHANNEL


class StepFinding(BaseModel):
    model_config = ConfigDict(frozen=True)

    finding: str


class EscalationStep(BaseModel):
    """One line of the checklist in the timeline; `at` is None while the step is awaited."""

    clock: str
    step: EscalationStepName
    at: datetime | None
    finding: str | None = None
    channel: str | None = None  # where a notice of this step went (warning, hand_over, flag)


class StatusPeriod(BaseModel):
    """One status, when it was entered and left, and by whose change."""

    status: SlaStatus
    entered: datetime
    left: datetime | None = None
    by: str
    reason: str | None = None
    business_seconds: int = 0


class ClockView(BaseModel):
    """An SLA clock as the partner and the operator see it."""

    name: str
    started: datetime
    warn_at: datetime | None
    due: datetime
    stopped: datetime | None
    warned: datetime | None
    breached: bool
    breached_at: datetime | None
    elapsed_seconds: int
    remaining_seconds: int
    paused: bool  # outside business hours right now (business-time clocks only)


class RejectedChange(BaseModel):
    at: datetime
    status: str
    by: str
    reason: str


class ApplicationStatus(BaseModel):
    """The query result and the workflow's result; also what the weekly report is built from."""

    workflow_id: str
    as_of: datetime  # the moment the clocks and the open status's time are computed for
    id: str
    partner: str
    urgent: bool
    calendar: SupportCalendar
    status: SlaStatus
    finished: bool
    closed_reason: str | None = None
    responsible_now: str | None
    periods: list[StatusPeriod]
    time_in_status: dict[str, int]
    clocks: list[ClockView]
    escalations: list[EscalationStep]
    breaches: int
    process_flag: bool
    rejected: list[RejectedChange] = Field(default_factory=list)

    def entered(self, status: SlaStatus) -> datetime | None:
        return next((p.entered for p in self.periods if p.status is status), None)
