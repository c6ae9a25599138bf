"""The application journey's activities: the automatic steps of the escalation checklist and the
snapshot the weekly report reads.

Methods of one class holding its dependencies (database, notifier), so tests and the simulator swap
the notifier, not the code. Each is idempotent: findings are pure, the snapshot replaces its rows,
and a notifier receives the dedup key `partner/application/clock` to pass on to its channel.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict
from temporalio import activity

from renewals.db.database import Database
from renewals.sla import escalation
from renewals.sla.models import ApplicationStatus, EscalationRequest, StepFinding
from renewals.sla.store import save_application

log = logging.getLogger(__name__)


class EscalationNotice(BaseModel):
    """A message to a person or channel: the hand-over (step 3) or the process flag (step 5)."""

    model_config = ConfigDict(frozen=True)

    dedup_key: str
    kind: str  # "hand_over" | "process_flag"
    to: str
    text: str


class EscalationNotifier(Protocol):
    async def notify(self, notice: EscalationNotice) -> None: ...


class LogNotifier:
    """Development default: the notice goes to the log (no PII in it: ids, stages and deadlines)."""

    async def notify(self, notice: EscalationNotice) -> None:
        log.info("sla %s to %s: %s", notice.kind, notice.to, notice.text)


class SlaActivities:
    def __init__(self, db: Database, notifier: EscalationNotifier | None = None) -> None:
        self.db = db
        self.notifier: EscalationNotifier = notifier or LogNotifier()

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.check_data_and_payment,
            self.locate_blocker,
            self.hand_over,
            self.raise_process_flag,
            self.record_application,
        ]

    @activity.defn(name="sla_check_data_and_payment")
    async def check_data_and_payment(self, request: EscalationRequest) -> StepFinding:
        return StepFinding(finding=escalation.check_data_and_payment(request))

    @activity.defn(name="sla_locate_blocker")
    async def locate_blocker(self, request: EscalationRequest) -> StepFinding:
        return StepFinding(finding=escalation.locate_blocker(request))

    @activity.defn(name="sla_hand_over")
    async def hand_over(self, request: EscalationRequest) -> StepFinding:
        to = escalation.responsible_for(request)
        text = escalation.hand_over_text(request)
        await self.notifier.notify(
            EscalationNotice(dedup_key=f"{request.dedup_key}/hand_over", kind="hand_over", to=to, text=text)
        )
        return StepFinding(finding=f"handed to {to}: {text}")

    @activity.defn(name="sla_raise_process_flag")
    async def raise_process_flag(self, request: EscalationRequest) -> StepFinding:
        text = escalation.process_flag_text(request)
        await self.notifier.notify(
            EscalationNotice(
                dedup_key=f"{request.dedup_key}/process_flag",
                kind="process_flag",
                to=request.partner,
                text=text,
            )
        )
        return StepFinding(finding=text)

    @activity.defn(name="sla_record_application")
    async def record_application(self, status: ApplicationStatus) -> None:
        await save_application(self.db, status)
