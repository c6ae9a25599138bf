"""The one place policies are stored: policy terms with their client, agent and regional centre
(idempotent upserts), and read back as models.

`store_policy` says whether anything changed, so a re-import reports "unchanged" and pushes nothing
to running journeys; `write_policies` writes a batch in a handful of statements.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import Select, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from renewals.db.database import Database
from renewals.db.tables import AgentRow, ClientRow, PolicyRow, RegionalCentreRow
from renewals.models import Agent, Line, Policy, RegionalCentre


class Change(StrEnum):
    INSERTED = "inserted"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


Term = tuple[str, date]  # (policy number, last day of cover): one row of `policies`
ClientKey = tuple[str, str, str]  # a client is one row per (phone, last name, first name)
# The columns of a term and of a client besides their keys, named as the models' fields.
TERM_DETAILS = {"product", "product_code", "bank", "bank_name", "first_prolongation_year", "renewal_centre"}
CLIENT_DETAILS = {"patronymic", "email", "vk_id"}  # the time zone is each term's own (migration 0008)
CLIENT_COLUMNS = ("last_name", "first_name", "phone", *sorted(CLIENT_DETAILS))
RATE_COLUMNS = {Line.KASKO: "rate_kasko", Line.OSAGO: "rate_osago", Line.IFL: "rate_ifl"}
Row = TypeVar("Row", AgentRow, RegionalCentreRow)


@dataclass(frozen=True)
class StoredPolicy:
    policy: Policy
    cancelled: bool


# ---- agents and regional centres ------------------------------------------------------------------


def agent_row(agent: Agent) -> AgentRow:
    rates = {column: agent.renewal_rates.get(line) for line, column in RATE_COLUMNS.items()}
    return AgentRow(id=agent.id, name=agent.name, phone=agent.phone, **rates)


def agent_model(row: AgentRow) -> Agent:
    rates = {line: getattr(row, column) for line, column in RATE_COLUMNS.items()}
    return Agent(
        id=row.id,
        name=row.name,
        phone=row.phone,
        renewal_rates={line: rate for line, rate in rates.items() if rate is not None},
    )


def centre_row(centre: RegionalCentre) -> RegionalCentreRow:
    return RegionalCentreRow(**centre.model_dump())


def centre_model(row: RegionalCentreRow) -> RegionalCentre:
    return RegionalCentre.model_validate(row, from_attributes=True)


async def known_agents(db: Database) -> dict[str, Agent]:
    async with db.session() as session:
        return {row.id: agent_model(row) for row in (await session.scalars(select(AgentRow))).all()}


async def known_centres(db: Database) -> dict[str, RegionalCentre]:
    async with db.session() as session:
        return {row.id: centre_model(row) for row in (await session.scalars(select(RegionalCentreRow))).all()}


async def store_agent(db: Database, agent: Agent) -> Change:
    return await _store(db, agent_row(agent), agent_model)


async def store_centre(db: Database, centre: RegionalCentre) -> Change:
    return await _store(db, centre_row(centre), centre_model)


async def _store(db: Database, row: Row, model: Callable[[Row], BaseModel]) -> Change:
    """Write `row` unless the stored one already means the same model."""
    async with db.session() as session, session.begin():
        stored = await session.get(type(row), row.id)
        if stored is not None and model(stored) == model(row):
            return Change.UNCHANGED
        await session.merge(row)
    return Change.INSERTED if stored is None else Change.UPDATED


# ---- policy terms ---------------------------------------------------------------------------------


async def upsert_policy(db: Database, policy: Policy) -> int:
    """Insert or update the policy term and everything it refers to; returns the policy row id."""
    async with db.session() as session, session.begin():
        await write_policies(session, [policy])
        query = select(PolicyRow.id).where(
            PolicyRow.number == policy.number, PolicyRow.expires_on == policy.expires_on
        )
        return (await session.execute(query)).scalar_one()


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


async def write_policies(
    session: AsyncSession, policies: Sequence[Policy], cancelled: Sequence[bool] | None = None
) -> None:
    """Insert or update policy terms with their clients, agents and centres inside the caller's
    transaction, in a handful of statements however many policies there are: an import writes a batch
    at a time, and row by row the round trips would be the whole cost. `cancelled[i]` marks the i-th
    term cancelled (a cancellation is never undone here)."""
    marks = list(cancelled) if cancelled is not None else [False] * len(policies)
    for agent in {p.agent.id: p.agent for p in policies}.values():
        await session.merge(agent_row(agent))
    centres = {p.regional_centre.id: p.regional_centre for p in policies if p.regional_centre}
    for centre in centres.values():
        await session.merge(centre_row(centre))
    client_ids = await _write_clients(session, policies)

    numbers = sorted({p.number for p in policies})
    found = await session.scalars(select(PolicyRow).where(PolicyRow.number.in_(numbers)))
    terms = {(row.number, row.expires_on): row for row in found.all()}
    new_terms: dict[Term, dict[str, Any]] = {}
    for policy, cancel in zip(policies, marks, strict=True):
        values = {
            **policy.model_dump(mode="json", include=TERM_DETAILS),
            "timezone": policy.client.timezone,
            "client_id": client_ids[_client_key(policy)],
            "agent_id": policy.agent.id,
            "regional_centre_id": policy.regional_centre.id if policy.regional_centre else None,
        }
        key = (policy.number, policy.expires_on)
        if key in terms:
            row = terms[key]
            for name, value in values.items():
                setattr(row, name, value)
            row.cancelled = bool(row.cancelled) or cancel
        else:
            earlier = new_terms.get(key, {}).get("cancelled", False)
            new_terms[key] = {"number": policy.number, "expires_on": policy.expires_on, **values}
            new_terms[key]["cancelled"] = earlier or cancel
    if new_terms:
        await session.execute(insert(PolicyRow), list(new_terms.values()))
    await session.flush()


def _client_key(policy: Policy) -> ClientKey:
    return (policy.client.phone, policy.client.last_name, policy.client.first_name)


async def _write_clients(session: AsyncSession, policies: Sequence[Policy]) -> dict[ClientKey, int]:
    """Reuse each client's row (refreshing its other fields) or insert it; returns the row ids."""
    phones = sorted({p.client.phone for p in policies})

    async def known() -> dict[ClientKey, ClientRow]:
        found = await session.scalars(select(ClientRow).where(ClientRow.phone.in_(phones)))
        return {(row.phone, row.last_name, row.first_name): row for row in found.all()}

    rows = await known()
    new: dict[ClientKey, dict[str, Any]] = {}
    for policy in policies:
        key = _client_key(policy)
        details = policy.client.model_dump(include=CLIENT_DETAILS)
        if key in rows:
            for name, value in details.items():
                setattr(rows[key], name, value)
        else:  # the last row of a client in the batch wins, as it would one row at a time
            new[key] = {"phone": key[0], "last_name": key[1], "first_name": key[2], **details}
    await session.flush()
    if new:
        await session.execute(insert(ClientRow), list(new.values()))
        rows = await known()
    return {key: row.id for key, row in rows.items()}


# ---- policies back as models ----------------------------------------------------------------------


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
    term = {name: getattr(policy, name) for name in TERM_DETAILS}
    model = Policy.model_validate(
        {
            "number": policy.number,
            "expires_on": policy.expires_on,
            **term,
            "client": {name: getattr(client, name) for name in CLIENT_COLUMNS}
            | {"timezone": policy.timezone},
            "agent": agent_model(agent),
            "regional_centre": centre,
        },
        from_attributes=True,
    )
    return StoredPolicy(model, policy.cancelled)


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


async def policies_of_clients(db: Database, people: set[ClientKey], today: date) -> list[StoredPolicy]:
    """Policy terms not yet over of these clients (phone, last name, first name): a client row is shared
    by one person's policies, so a change to it (an e-mail, a VK id) must reach all their journeys."""
    phones = sorted({phone for phone, _, _ in people})
    query = _policies_query().where(PolicyRow.expires_on >= today, ClientRow.phone.in_(phones))
    async with db.session() as session:
        found = [_stored(f[0], f[1], f[2], f[3]) for f in (await session.execute(query)).all()]
    return [stored for stored in found if _client_key(stored.policy) in people]


async def current_term(db: Database, number: str, today: date) -> date | None:
    """The term of `number` a callback most likely means: the next one to end, else the latest."""
    async with db.session() as session:
        terms = sorted(
            (await session.scalars(select(PolicyRow.expires_on).where(PolicyRow.number == number))).all()
        )
    if not terms:
        return None
    return next((term for term in terms if term >= today), terms[-1])
