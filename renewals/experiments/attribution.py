"""For each secured renewal: the last message that reached the client before it, within a window
(default 7 days), and whether the client engaged (opened, read, replied, answered Робот Даша) before
paying. Shown beside the uplift: which touchpoints are there when renewals happen, at what cost."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select

from renewals.db.database import Database, as_utc
from renewals.db.tables import OutboxRow
from renewals.db.tables_ops import WebhookEventRow
from renewals.experiments.outcomes import Outcome
from renewals.journey_api import ROBOT_CONTACTS

ENGAGEMENT_KINDS = frozenset({"opened", "read", "reply", "replied"} | {o.value for o in ROBOT_CONTACTS})
NO_TOUCH = "(none in the window)"


@dataclass
class Attribution:
    window_days: int
    secured: int = 0
    by_last_touch: Counter[str] = field(default_factory=Counter)  # template → secured renewals
    engaged_by_last_touch: Counter[str] = field(default_factory=Counter)  # of those, engaged first
    sent_by_template: Counter[str] = field(default_factory=Counter)  # messages sent (their cost)


async def attribute(db: Database, secured: Sequence[Outcome], window_days: int = 7) -> Attribution:
    """Last touch and engagement of these secured outcomes (those with a known moment)."""
    result = Attribution(window_days)
    timed = {o.journey_id: o for o in secured if o.secured and o.secured_at is not None}
    ids = sorted(timed)
    window = timedelta(days=window_days)
    for first in range(0, len(ids), 500):
        chunk = ids[first : first + 500]
        async with db.session() as session:
            sends = (
                await session.execute(
                    select(OutboxRow.journey_id, OutboxRow.template, OutboxRow.updated_at).where(
                        OutboxRow.journey_id.in_(chunk), OutboxRow.status == "sent"
                    )
                )
            ).all()
            facts = (
                await session.execute(
                    select(WebhookEventRow.journey_id, WebhookEventRow.received_at).where(
                        WebhookEventRow.journey_id.in_(chunk),
                        WebhookEventRow.kind.in_(sorted(ENGAGEMENT_KINDS)),
                    )
                )
            ).all()
        last: dict[str, tuple[datetime, str]] = {}
        for journey, template, at in sends:
            result.sent_by_template[template] += 1
            sent, moment = as_utc(at), _secured_at(timed[journey])
            later = journey not in last or sent > last[journey][0]
            if sent <= moment and moment - sent <= window and later:
                last[journey] = (sent, template)
        engaged = {journey for journey, at in facts if as_utc(at) <= _secured_at(timed[journey])}
        for journey in chunk:
            template = last[journey][1] if journey in last else NO_TOUCH
            result.secured += 1
            result.by_last_touch[template] += 1
            if journey in engaged:
                result.engaged_by_last_touch[template] += 1
    return result


def _secured_at(outcome: Outcome) -> datetime:
    assert outcome.secured_at is not None  # only timed outcomes are attributed
    return as_utc(outcome.secured_at)
