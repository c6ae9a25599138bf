"""What a renewal journey shows: its stage, timeline, events and next touchpoint, kept truthful in
the `status` query, the search attributes and the Temporal UI's current details.

Workflow code (deterministic): time comes from `workflow.now()` only.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate

with workflow.unsafe.imports_passed_through():
    from renewals import search_attributes as sa
    from renewals.journey_api import (
        TERMINAL_STAGES,
        EntryStatus,
        JourneyStatus,
        NextTouchpoint,
        ReceivedEvent,
        Stage,
        TimelineEntry,
    )
    from renewals.models import Policy
    from renewals.rules import PROGRESS, Touchpoint
    from renewals.sendwindow import zone

# The stage search attribute is upserted only when the stage changes (before: on every publish, so
# each touchpoint's "next" wrote an unchanged stage: one history event and one visibility write each).
STAGE_UPSERT_PATCH = "stage-upserts-on-change"


class JourneyRecord:
    """The journey's visible state; the workflow decides, this keeps the account of it."""

    def __init__(self, journey_id: str, policy: Policy) -> None:
        self.id = journey_id
        self.policy = policy
        self.tz = zone(policy.client.timezone)
        self.stage = Stage.SCHEDULED
        self.timeline: list[TimelineEntry] = []
        self.events: list[ReceivedEvent] = []
        self.next: NextTouchpoint | None = None
        self._stage_shown: Stage | None = None  # the stage the search attribute holds

    def replace_policy(self, policy: Policy) -> None:
        self.policy = policy
        self.tz = zone(policy.client.timezone)
        self.upsert_all()

    # ---- time in the client's zone -------------------------------------------------------------

    def local_today(self) -> date:
        return workflow.now().astimezone(self.tz).date()

    def day_of_term(self) -> int:
        """Today relative to the last day of cover (−17 is 17 days before it)."""
        return (self.local_today() - self.policy.expires_on).days

    def end_of_cover(self) -> datetime:
        return datetime.combine(self.policy.expires_on + timedelta(days=1), time(0), tzinfo=self.tz)

    def until_end_of_cover(self) -> timedelta:
        return max(self.end_of_cover() - workflow.now(), timedelta(minutes=1))

    # ---- timeline and events -------------------------------------------------------------------

    def record(
        self,
        touchpoint: Touchpoint,
        status: EntryStatus,
        reason: str | None,
        recipient: str | None,
        text: str | None,
    ) -> None:
        now = workflow.now()
        self.timeline.append(
            TimelineEntry(
                at=now,
                day=(now.astimezone(self.tz).date() - self.policy.expires_on).days,
                touchpoint=touchpoint.key,
                channel=touchpoint.rule.channel,
                status=status,
                reason=reason,
                template=touchpoint.rule.template,
                to=recipient,
                text=text,
            )
        )

    def note(self, kind: str, detail: str | None) -> None:
        self.events.append(ReceivedEvent(at=workflow.now(), type=kind, detail=detail))

    def opt_out_reason(self) -> str:
        """Why the journey ended as opted out (its `finished: opted_out` note), not whatever arrived
        after it (a delivery report of a send winding down)."""
        finished = f"finished: {Stage.OPTED_OUT.value}"
        return next((e.detail for e in reversed(self.events) if e.type == finished and e.detail), "opt_out")

    def finish_reason(self) -> str:
        """Why the journey ended (its `finished: <stage>` note), for the operator tasks it closes."""
        finished = f"finished: {self.stage.value}"
        return next((e.detail for e in reversed(self.events) if e.type == finished and e.detail), "")

    # ---- stages --------------------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self.stage in TERMINAL_STAGES

    def finish(self, stage: Stage, why: str) -> None:
        if self.finished:
            return
        self.stage = stage
        self.next = None
        self.note(f"finished: {stage.value}", why)
        self.publish()

    def advance(self, stage: Stage) -> None:
        if self.finished or PROGRESS.index(stage) <= PROGRESS.index(self.stage):
            return
        self.stage = stage
        self.publish()

    def expect(self, touchpoint: Touchpoint, due: datetime) -> None:
        self.next = NextTouchpoint(touchpoint=touchpoint.key, channel=touchpoint.rule.channel, due_at=due)
        self.publish()

    def status(self) -> JourneyStatus:
        return JourneyStatus(
            workflow_id=self.id,
            policy_number=self.policy.number,
            stage=self.stage,
            next=self.next,
            timeline=list(self.timeline),
            events=list(self.events),
        )

    # ---- the Temporal UI -----------------------------------------------------------------------

    def publish(self) -> None:
        """Keep the Temporal UI truthful: stage search attribute and the current-details text."""
        if self.stage is not self._stage_shown or not workflow.patched(STAGE_UPSERT_PATCH):
            workflow.upsert_search_attributes([sa.JOURNEY_STAGE.value_set(self.stage.value)])
            self._stage_shown = self.stage
        self.show_details()

    def mark_send_failed(self) -> None:
        """Findable in the UI: `SendFailed = true`."""
        workflow.upsert_search_attributes([sa.SEND_FAILED.value_set(True)])

    def show_details(self) -> None:
        lines = [
            f"**Policy** {self.policy.number} ({self.policy.product.value}), "
            f"last day of cover {self.policy.expires_on:%d.%m.%Y}",
            f"**Stage** {self.stage.value}",
        ]
        if self.next is not None:
            local = self.next.due_at.astimezone(self.tz)
            lines.append(f"**Next** {self.next.touchpoint} at {local:%d.%m.%Y %H:%M %Z}")
        workflow.set_current_details("\n\n".join(lines))

    def upsert_all(self) -> None:
        """Every search attribute, the stage included (the journey's start, a policy update)."""
        workflow.upsert_search_attributes(self.search_attributes())
        self._stage_shown = self.stage

    def search_attributes(self) -> list[SearchAttributeUpdate[Any]]:
        policy = self.policy
        expires_at = datetime.combine(policy.expires_on, time(0), tzinfo=self.tz)
        return [
            sa.POLICY_NUMBER.value_set(policy.number),
            sa.PRODUCT.value_set(policy.product.value),
            sa.AGENT_ID.value_set(policy.agent.id),
            sa.RENEWAL_CENTRE.value_set(policy.regional_centre.id if policy.regional_centre else ""),
            sa.EXPIRES_ON.value_set(expires_at),
            sa.JOURNEY_STAGE.value_set(self.stage.value),
        ]
