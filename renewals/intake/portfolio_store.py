"""Intake's database side: known agents and centres, idempotent stores, and policies back as models.

`store_policy` says whether anything changed, so a re-import reports "unchanged" and pushes nothing
to running journeys.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from renewals.db.database import Database
from renewals.db.policies import write_policies
from renewals.db.tables import AgentRow, ClientRow, PolicyRow, RegionalCentreRow
from renewals.models import Agent, Bank, Client, Line, Policy, Product, RegionalCentre


class Change(StrEnum):
    INSERTED = "inserted"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


Term = tuple[str, date]  # (policy number, last day of cover)


@dataclass(frozen=True)
class StoredPolicy:
    policy: Policy
    cancelled: bool


def agent_model(row: AgentRow) -> Agent:
    rates = {Line.KASKO: row.rate_kasko, Line.OSAGO: row.rate_osago, Line.IFL: row.rate_ifl}
    return Agent(
        id=row.id,
        name=row.name,
        phone=row.phone,
        renewal_rates={line: rate for line, rate in rates.items() if rate is not None},
    )


async def known_agents(db: Database) -> dict[str, Agent]:
    async with db.session() as session:
        return {row.id: agent_model(row) for row in (await session.scalars(select(AgentRow))).all()}


async def known_centres(db: Database) -> dict[str, RegionalCentre]:
    async with db.session() as session:
        rows = (await session.scalars(select(RegionalCentreRow))).all()
        return {row.id: RegionalCentre(id=row.id, name=row.name, phone=row.phone) for row in rows}


async def store_agent(db: Database, agent: Agent) -> Change:
    known = (await known_agents(db)).get(agent.id)
    if known == agent:
        return Change.UNCHANGED
    async with db.session() as session, session.begin():
        await session.merge(
            AgentRow(
                id=agent.id,
                name=agent.name,
                phone=agent.phone,
                rate_kasko=agent.renewal_rates.get(Line.KASKO),
                rate_osago=agent.renewal_rates.get(Line.OSAGO),
                rate_ifl=agent.renewal_rates.get(Line.IFL),
            )
        )
    return Change.INSERTED if known is None else Change.UPDATED


async def store_centre(db: Database, centre: RegionalCentre) -> Change:
    known = (await known_centres(db)).get(centre.id)
    if known == centre:
        return Change.UNCHANGED
    async with db.session() as session, session.begin():
        await session.merge(RegionalCentreRow(id=centre.id, name=centre.name, phone=centre.phone))
    return Change.INSERTED if known is None else Change.UPDATED


async def store_policy(db: Database, policy: Policy, cancelled: bool) -> Change:
    """Upsert the policy term; a cancellation is sticky (a later row without it does not revive it)."""
    return (await store_policies(db, [(policy, cancelled)]))[0]


async def store_policies(db: Database, records: Sequence[tuple[Policy, bool]]) -> list[Change]:
    """`store_policy` for a batch in one transaction: the terms already stored are read in one query
    and only the changed ones are written (an import commits once per batch, not once per row)."""
    keys = [(policy.number, policy.expires_on) for policy, _ in records]
    changes: list[Change] = []
    async with db.session() as session, session.begin():
        before = await _load_terms(session, keys)
        to_write: dict[Term, tuple[Policy, bool]] = {}
        for (policy, cancelled), key in zip(records, keys, strict=True):
            prior = before.get(key)
            now_cancelled = cancelled or (prior is not None and prior.cancelled)
            if prior is not None and prior.policy == policy and prior.cancelled == now_cancelled:
                changes.append(Change.UNCHANGED)
                continue
            changes.append(Change.INSERTED if prior is None and key not in to_write else Change.UPDATED)
            to_write[key] = (policy, now_cancelled)  # a term repeated later in the batch: the last wins
        await write_policies(
            session, [policy for policy, _ in to_write.values()], [cancel for _, cancel in to_write.values()]
        )
    return changes


async def _load_terms(session: AsyncSession, keys: Sequence[Term]) -> dict[Term, StoredPolicy]:
    numbers = sorted({number for number, _ in keys})
    query = _policies_query().where(PolicyRow.number.in_(numbers))
    wanted = set(keys)
    found: dict[Term, StoredPolicy] = {}
    for policy, client, agent, centre in (await session.execute(query)).all():
        key = (policy.number, policy.expires_on)
        if key in wanted:
            found[key] = _stored(policy, client, agent, centre)
    return found


def _policies_query() -> Select[PolicyRow, ClientRow, AgentRow, RegionalCentreRow]:
    centre = aliased(RegionalCentreRow)
    return (
        select(PolicyRow, ClientRow, AgentRow, centre)
        .join(ClientRow, PolicyRow.client_id == ClientRow.id)
        .join(AgentRow, PolicyRow.agent_id == AgentRow.id)
        .outerjoin(centre, PolicyRow.regional_centre_id == centre.id)
    )


def _stored(
    policy: PolicyRow, client: ClientRow, agent: AgentRow, centre: RegionalCentreRow | None
) -> StoredPolicy:
    return StoredPolicy(
        Policy(
            number=policy.number,
            product=Product(policy.product),
            product_code=policy.product_code,
            bank=Bank(policy.bank) if policy.bank else None,
            expires_on=policy.expires_on,
            first_prolongation_year=policy.first_prolongation_year,
            renewal_centre=policy.renewal_centre,
            client=Client(
                last_name=client.last_name,
                first_name=client.first_name,
                patronymic=client.patronymic,
                phone=client.phone,
                email=client.email,
                vk_id=client.vk_id,
                timezone=client.timezone,
            ),
            agent=agent_model(agent),
            regional_centre=(
                RegionalCentre(id=centre.id, name=centre.name, phone=centre.phone) if centre else None
            ),
        ),
        policy.cancelled,
    )


async def load_policy(db: Database, number: str, expires_on: date) -> StoredPolicy | None:
    async with db.session() as session:
        return (await _load_terms(session, [(number, expires_on)])).get((number, expires_on))


async def policies_expiring(db: Database, today: date, horizon_days: int) -> list[StoredPolicy]:
    """Every policy term whose last day of cover is within [today, today + horizon], earliest first."""
    query = (
        _policies_query()
        .where(PolicyRow.expires_on >= today, PolicyRow.expires_on <= today + timedelta(days=horizon_days))
        .order_by(PolicyRow.expires_on, PolicyRow.number)
    )
    async with db.session() as session:
        return [_stored(f[0], f[1], f[2], f[3]) for f in (await session.execute(query)).all()]


async def policies_referring(
    db: Database, agent_ids: set[str], centre_ids: set[str], today: date
) -> list[StoredPolicy]:
    """Policy terms not yet over whose agent or regional centre is one of these (their journeys carry
    the agent's card and the centre's phone, so a change to either must reach them)."""
    query = _policies_query().where(
        PolicyRow.expires_on >= today,
        PolicyRow.agent_id.in_(sorted(agent_ids)) | PolicyRow.regional_centre_id.in_(sorted(centre_ids)),
    )
    async with db.session() as session:
        return [_stored(f[0], f[1], f[2], f[3]) for f in (await session.execute(query)).all()]


async def current_term(db: Database, number: str, today: date) -> date | None:
    """The term of `number` a callback most likely means: the next one to end, else the latest."""
    async with db.session() as session:
        terms = sorted(
            (await session.scalars(select(PolicyRow.expires_on).where(PolicyRow.number == number))).all()
        )
    if not terms:
        return None
    return next((term for term in terms if term >= today), terms[-1])
