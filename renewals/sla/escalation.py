"""What the automatic steps of the escalation checklist find, as pure functions of the application.

The seed's checklist: 1) check the data and the payment, 2) find where it is stuck (check / documents /
signature / sending), 3) hand over the application number and the deadline, 4) record the answer and
its time (an operator action or the application's progress), 5) on a repeated breach raise the
process-correction / dedicated-channel flag. Activities wrap these; the journey tracks the sequence.
"""

from __future__ import annotations

from renewals.sendwindow import zone
from renewals.sla.models import BLOCKER_OF_STATUS, DUTY_OF_STATUS, Duty, EscalationRequest


def check_data_and_payment(request: EscalationRequest) -> str:
    payment = "payment received" if request.paid else "no payment yet"
    missing = [duty.value for duty in Duty if request.responsible.for_duty(duty) is None]
    people = f"no responsible person for: {', '.join(missing)}" if missing else "responsible persons named"
    return f"{payment}; {people}"


def locate_blocker(request: EscalationRequest) -> str:
    """The step that has to happen next; the weekly report counts these as delay reasons."""
    return BLOCKER_OF_STATUS.get(request.status, request.status.value)


def responsible_for(request: EscalationRequest) -> str:
    person = request.responsible.for_duty(DUTY_OF_STATUS[request.status])
    return person or "the duty operator (no responsible person named)"


def hand_over_text(request: EscalationRequest) -> str:
    deadline = request.due.astimezone(zone(request.timezone))
    return (
        f"application {request.application_id} ({request.partner}), {request.clock} SLA deadline "
        f"{deadline:%d.%m.%Y %H:%M %Z}, stuck at {locate_blocker(request)}"
    )


def warning_text(request: EscalationRequest) -> str:
    """Before the breach: the same facts as the hand-over, so the person can act before the deadline."""
    deadline = request.due.astimezone(zone(request.timezone))
    return (
        f"warning: application {request.application_id} ({request.partner}), {request.clock} SLA "
        f"deadline {deadline:%d.%m.%Y %H:%M %Z}, waiting for {locate_blocker(request)}"
    )


def process_flag_text(request: EscalationRequest) -> str:
    return (
        f"breach #{request.breach_number} on application {request.application_id} ({request.partner}): "
        "correct the process or open a dedicated support channel"
    )
