"""The application journey's activities: the warning before a breach, the automatic steps of the
escalation checklist and the snapshot the weekly report reads.

Methods of one class holding its dependencies (database, notifiers), so tests and the simulator swap
the notifiers, not the code. Each is idempotent: findings are pure, the snapshot replaces its rows,
and a notifier receives the dedup key `partner/application/clock/kind` (and the application's
workflow id, clock and kind, from which the production notifier keys its outbox rows).

Routing: an urgent application's warnings and hand-overs go through the urgent channel (the
dedicated urgent line, `RENEWALS_SLA_URGENT_LINE`, on its own notifier) — the seed's separate channel
with a 10–15 minute reaction; other applications' go to the stage's responsible person; the process
flag to the partner cabinet. The worker's notifier (`SlaActivities.for_worker`) sends them by e-mail,
SMS and a signed webhook (`renewals.sla.notices`); `LogNotifier` is for tests and the simulator.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from temporalio import activity

from renewals.db.database import Database
from renewals.settings import Settings
from renewals.sla import escalation
from renewals.sla.models import (
    DUTY_OF_STATUS,
    PARTNER_CHANNEL,
    URGENT_CHANNEL,
    ApplicationStatus,
    EscalationRequest,
    StepFinding,
    application_workflow_id,
)
from renewals.sla.notices import (
    CabinetOutbox,
    CabinetTransport,
    ChannelNotifier,
    EscalationNotice,
    EscalationNotifier,
    PartnerCabinet,
    RecordingCabinet,
    Send,
)
from renewals.sla.notices_config import SlaContacts, sandbox_contacts
from renewals.sla.snapshots import save_application
from renewals.sla.targets import get_sla_settings

__all__ = ["EscalationNotice", "EscalationNotifier", "LogNotifier", "SlaActivities", "SlaNoticeConfigError"]

log = logging.getLogger(__name__)


class SlaNoticeConfigError(ValueError):
    """`channels=providers` with SLA notices that would have nowhere to go: refused at worker start."""


class LogNotifier:
    """Tests and `renewals sla simulate`: the notice goes to the log (no PII in it: ids, stages and
    deadlines). Never the production worker's: there a notice must reach a person."""

    async def notify(self, notice: EscalationNotice) -> str | None:
        log.info("sla %s via %s to %s: %s", notice.kind, notice.channel, notice.to, notice.text)
        return None


def production_notifier(db: Database, settings: Settings, send: Send) -> ChannelNotifier:
    """The worker's notifier: `settings.sla_contacts`; without them the sandbox destinations, except
    with `channels=providers`, which refuses to start rather than send notices nowhere."""
    contacts: SlaContacts | None = getattr(settings, "sla_contacts", None)
    if settings.channels == "providers":
        missing = ["RENEWALS_SLA_CONTACTS"] if contacts is None else contacts.missing_for_production()
        if missing:
            raise SlaNoticeConfigError(
                "RENEWALS_CHANNELS=providers needs the partner SLA's notice destinations: "
                f"{'; '.join(missing)} (RENEWALS_SLA_CONTACTS, see docs/configuration.md)"
            )
    if contacts is None:
        contacts = sandbox_contacts(settings.gateway_url if settings.channels == "gateway" else None)
    transport: CabinetTransport = (
        RecordingCabinet() if contacts.partner_cabinet is None else PartnerCabinet(contacts.partner_cabinet)
    )
    return ChannelNotifier(contacts, send, CabinetOutbox(db, transport))


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

    @classmethod
    def for_worker(cls, db: Database, settings: Settings, send: Send) -> SlaActivities:
        """The production worker's activities: notices through the channels, each once (`send` is
        the renewal journey's send, `JourneyActivities.send`). Raises `SlaNoticeConfigError` for a
        production configuration that names no destination."""
        return cls(db, production_notifier(db, settings, send))

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.warn,
            self.check_data_and_payment,
            self.locate_blocker,
            self.hand_over,
            self.raise_process_flag,
            self.record_application,
        ]

    async def _deliver(self, request: EscalationRequest, kind: str, text: str) -> tuple[str, str]:
        """Send through the request's channel; returns who it went to, and what went wrong (or "")."""
        if request.channel == URGENT_CHANNEL:
            to, notifier = self.urgent_line, self.urgent_notifier
        else:
            to, notifier = escalation.responsible_for(request), self.notifier
        failed = await notifier.notify(_notice(request, kind, to, text, request.channel))
        return to, "" if not failed else f" (not delivered: {failed})"

    @activity.defn(name="sla_warn")
    async def warn(self, request: EscalationRequest) -> StepFinding:
        """Before the breach: tell whoever can still keep the deadline."""
        text = escalation.warning_text(request)
        to, failed = await self._deliver(request, "warning", text)
        return StepFinding(finding=f"warned {to} via {request.channel}: {text}{failed}")

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
        to, failed = await self._deliver(request, "hand_over", text)
        return StepFinding(finding=f"handed to {to}: {text}{failed}")

    @activity.defn(name="sla_raise_process_flag")
    async def raise_process_flag(self, request: EscalationRequest) -> StepFinding:
        text = escalation.process_flag_text(request)
        failed = await self.notifier.notify(
            _notice(request, "process_flag", request.partner, text, PARTNER_CHANNEL)
        )
        return StepFinding(finding=text if not failed else f"{text} (not delivered: {failed})")

    @activity.defn(name="sla_record_application")
    async def record_application(self, status: ApplicationStatus) -> None:
        await save_application(self.db, status)


def _notice(request: EscalationRequest, kind: str, to: str, text: str, channel: str) -> EscalationNotice:
    duty = DUTY_OF_STATUS[request.status]
    return EscalationNotice(
        dedup_key=f"{request.dedup_key}/{kind}",
        kind=kind,
        to=to,
        text=text,
        channel=channel,
        journey_id=application_workflow_id(request.partner, request.application_id),
        application_id=request.application_id,
        partner=request.partner,
        clock=request.clock,
        person=request.responsible.for_duty(duty),
        duty=duty,
        due=request.due,
    )
