"""The application journey's activities: the warning before a breach, the automatic steps of the
escalation checklist and the snapshot the weekly report reads.

Methods of one class holding its dependencies (database, notifiers), so tests and the simulator swap
the notifiers, not the code. Each is idempotent: findings are pure, the snapshot replaces its rows,
and a notifier receives the dedup key `partner/application/clock/kind` to pass on to its channel.

Routing: an urgent application's warnings and hand-overs go through the urgent channel (the
dedicated urgent line, `RENEWALS_SLA_URGENT_LINE`, on its own notifier) — the seed's separate channel
with a 10–15 minute reaction; other applications' go to the stage's responsible person.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict
from temporalio import activity

from renewals.db.database import Database
from renewals.sla import escalation
from renewals.sla.models import (
    PARTNER_CHANNEL,
    RESPONSIBLE_CHANNEL,
    URGENT_CHANNEL,
    ApplicationStatus,
    EscalationRequest,
    StepFinding,
)
from renewals.sla.snapshots import save_application
from renewals.sla.targets import get_sla_settings

log = logging.getLogger(__name__)


class EscalationNotice(BaseModel):
    """A message to a person or channel: the warning, the hand-over (step 3) or the process flag."""

    model_config = ConfigDict(frozen=True)

    dedup_key: str
    kind: str  # "warning" | "hand_over" | "process_flag"
    to: str
    text: str
    channel: str = RESPONSIBLE_CHANNEL  # "responsible" | "urgent" | "partner"


class EscalationNotifier(Protocol):
    async def notify(self, notice: EscalationNotice) -> None: ...


class LogNotifier:
    """Development default: the notice goes to the log (no PII in it: ids, stages and deadlines)."""

    async def notify(self, notice: EscalationNotice) -> None:
        log.info("sla %s via %s to %s: %s", notice.kind, notice.channel, notice.to, notice.text)


class SlaActivities:
    def __init__(
        self,
        db: Database,
        notifier: EscalationNotifier | None = None,
        urgent_notifier: EscalationNotifier | None = None,
        urgent_line: str | None = None,
    ) -> None:
        """`urgent_notifier` is the urgent line's transport (default: the same as `notifier`; the
        notice's `channel` still says "urgent"); `urgent_line` its recipient (default: settings)."""
        self.db = db
        self.notifier: EscalationNotifier = notifier or LogNotifier()
        self.urgent_notifier: EscalationNotifier = urgent_notifier or self.notifier
        self.urgent_line = urgent_line or get_sla_settings().urgent_line

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.warn,
            self.check_data_and_payment,
            self.locate_blocker,
            self.hand_over,
            self.raise_process_flag,
            self.record_application,
        ]

    async def _deliver(self, request: EscalationRequest, kind: str, text: str) -> str:
        """Send through the request's channel; returns who it went to."""
        if request.channel == URGENT_CHANNEL:
            to, notifier = self.urgent_line, self.urgent_notifier
        else:
            to, notifier = escalation.responsible_for(request), self.notifier
        await notifier.notify(
            EscalationNotice(
                dedup_key=f"{request.dedup_key}/{kind}", kind=kind, to=to, text=text, channel=request.channel
            )
        )
        return to

    @activity.defn(name="sla_warn")
    async def warn(self, request: EscalationRequest) -> StepFinding:
        """Before the breach: tell whoever can still keep the deadline."""
        text = escalation.warning_text(request)
        to = await self._deliver(request, "warning", text)
        return StepFinding(finding=f"warned {to} via {request.channel}: {text}")

    @activity.defn(name="sla_check_data_and_payment")
    async def check_data_and_payment(self, request: EscalationRequest) -> StepFinding:
        return StepFinding(finding=escalation.check_data_and_payment(request))

    @activity.defn(name="sla_locate_blocker")
    async def locate_blocker(self, request: EscalationRequest) -> StepFinding:
        return StepFinding(finding=escalation.locate_blocker(request))

    @activity.defn(name="sla_hand_over")
    async def hand_over(self, request: EscalationRequest) -> StepFinding:
        text = escalation.hand_over_text(request)
        if request.channel == URGENT_CHANNEL:  # the line reaches the person; name them
            text += f"; responsible: {escalation.responsible_for(request)}"
        to = await self._deliver(request, "hand_over", text)
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
                channel=PARTNER_CHANNEL,
            )
        )
        return StepFinding(finding=text)

    @activity.defn(name="sla_record_application")
    async def record_application(self, status: ApplicationStatus) -> None:
        await save_application(self.db, status)
