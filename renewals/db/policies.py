"""Store policies with their client, agent and regional centre (idempotent upserts)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from renewals.db.database import Database
from renewals.db.tables import AgentRow, ClientRow, PolicyRow, RegionalCentreRow
from renewals.models import Line, Policy

ClientKey = tuple[str, str, str]  # a client is one row per (phone, last name, first name)


async def upsert_policy(db: Database, policy: Policy) -> int:
    """Insert or update the policy term and everything it refers to; returns the policy row id."""
    async with db.session() as session, session.begin():
        await write_policies(session, [policy])
        query = select(PolicyRow.id).where(
            PolicyRow.number == policy.number, PolicyRow.expires_on == policy.expires_on
        )
        return (await session.execute(query)).scalar_one()


async def write_policies(
    session: AsyncSession, policies: Sequence[Policy], cancelled: Sequence[bool] | None = None
) -> None:
    """Insert or update policy terms with their clients, agents and centres inside the caller's
    transaction, in a handful of statements however many policies there are: an import writes a batch
    at a time, and row by row the round trips would be the whole cost. `cancelled[i]` marks the i-th
    term cancelled (a cancellation is never undone here)."""
    marks = list(cancelled) if cancelled is not None else [False] * len(policies)
    for agent in {p.agent.id: p.agent for p in policies}.values():
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
    centres = {p.regional_centre.id: p.regional_centre for p in policies if p.regional_centre}
    for centre in centres.values():
        await session.merge(RegionalCentreRow(id=centre.id, name=centre.name, phone=centre.phone))
    client_ids = await _write_clients(session, policies)

    numbers = sorted({p.number for p in policies})
    found = await session.scalars(select(PolicyRow).where(PolicyRow.number.in_(numbers)))
    terms = {(row.number, row.expires_on): row for row in found.all()}
    new_terms: dict[tuple[str, Any], dict[str, Any]] = {}
    for policy, cancel in zip(policies, marks, strict=True):
        values = {
            "product": policy.product.value,
            "product_code": policy.product_code,
            "bank": policy.bank.value if policy.bank else None,
            "first_prolongation_year": policy.first_prolongation_year,
            "renewal_centre": policy.renewal_centre,
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
        key, person = _client_key(policy), policy.client
        details = {
            "patronymic": person.patronymic,
            "email": person.email,
            "vk_id": person.vk_id,
            "timezone": person.timezone,
        }
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
