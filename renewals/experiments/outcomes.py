"""Each journey of an experiment with its outcome: was the renewal secured by the end of cover?

Secured: the journey ended paid or renewed (table `journeys`), or the client's next term of the same
product was imported (a policy of the same client, product and an end 300–430 days later: insurers
often give the renewal a new number). Only terms whose cover has ended count: a running one could still
be secured, and counting only its successes would bias the rate up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from renewals.db.database import Database
from renewals.db.tables import JourneyRow, PolicyRow
from renewals.db.tables_experiments import ExperimentArmRow
from renewals.journey_api import SECURED_STAGES

NEXT_TERM = (timedelta(days=300), timedelta(days=430))


@dataclass(frozen=True)
class Outcome:
    journey_id: str
    experiment: str
    arm: str
    product: str
    segment: str
    agent_id: str
    expires_on: date
    secured: bool
    secured_at: datetime | None  # when the journey saw the payment or renewal (None: next term only)


async def outcomes(db: Database, today: date, experiment: str | None = None) -> list[Outcome]:
    arms = select(ExperimentArmRow, JourneyRow.stage, JourneyRow.updated_at).outerjoin(
        JourneyRow, JourneyRow.id == ExperimentArmRow.journey_id
    )
    arms = arms.where(ExperimentArmRow.expires_on < today)
    if experiment is not None:
        arms = arms.where(ExperimentArmRow.experiment == experiment)
    async with db.session() as session:
        rows = (await session.execute(arms.order_by(ExperimentArmRow.journey_id))).all()
        renewed_later = await _next_terms(session, {(r[0].policy_number, r[0].expires_on) for r in rows})
    result = []
    for arm, stage, updated_at in rows:
        by_journey = stage in {s.value for s in SECURED_STAGES}
        secured = by_journey or (arm.policy_number, arm.expires_on) in renewed_later
        result.append(
            Outcome(
                journey_id=arm.journey_id,
                experiment=arm.experiment,
                arm=arm.arm,
                product=arm.product,
                segment=arm.segment,
                agent_id=arm.agent_id,
                expires_on=arm.expires_on,
                secured=secured,
                secured_at=updated_at if by_journey else None,
            )
        )
    return result


async def _next_terms(session: AsyncSession, terms: set[tuple[str, date]]) -> set[tuple[str, date]]:
    """The terms among these whose client has a next term of the same product in `policies`."""
    if not terms:
        return set()
    this, later = aliased(PolicyRow), aliased(PolicyRow)
    found: set[tuple[str, date]] = set()
    numbers = sorted({number for number, _ in terms})
    for first in range(0, len(numbers), 500):
        query = (
            select(this.number, this.expires_on, later.expires_on)
            .join(later, and_(later.client_id == this.client_id, later.product == this.product))
            .where(this.number.in_(numbers[first : first + 500]), later.id != this.id)
        )
        for number, ends, next_ends in (await session.execute(query)).all():
            if (number, ends) in terms and NEXT_TERM[0] <= next_ends - ends <= NEXT_TERM[1]:
                found.add((number, ends))
    return found
