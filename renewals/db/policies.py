"""Store policies with their client, agent and regional centre (idempotent upserts)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from renewals.db.database import Database
from renewals.db.tables import AgentRow, ClientRow, PolicyRow, RegionalCentreRow
from renewals.models import Line, Policy


async def upsert_policy(db: Database, policy: Policy) -> int:
    """Insert or update the policy term and everything it refers to; returns the policy row id."""
    async with db.session() as session, session.begin():
        return (await write_policy(session, policy)).id


async def write_policy(session: AsyncSession, policy: Policy, merged: set[str] | None = None) -> PolicyRow:
    """`upsert_policy` inside the caller's transaction, so a batch of rows commits once. `merged`
    remembers the agents and centres this transaction already wrote: each is merged once a batch."""
    agent, client, centre = policy.agent, policy.client, policy.regional_centre
    merged = set() if merged is None else merged
    if f"agent:{agent.id}" not in merged:
        merged.add(f"agent:{agent.id}")
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
    if centre is not None and f"centre:{centre.id}" not in merged:
        merged.add(f"centre:{centre.id}")
        await session.merge(RegionalCentreRow(id=centre.id, name=centre.name, phone=centre.phone))
    client_row = (
        await session.execute(
            select(ClientRow).where(
                ClientRow.phone == client.phone,
                ClientRow.last_name == client.last_name,
                ClientRow.first_name == client.first_name,
            )
        )
    ).scalar_one_or_none()
    if client_row is None:
        client_row = ClientRow(last_name=client.last_name, first_name=client.first_name, phone=client.phone)
        session.add(client_row)
    client_row.patronymic = client.patronymic
    client_row.email = client.email
    client_row.vk_id = client.vk_id
    client_row.timezone = client.timezone
    await session.flush()
    row = (
        await session.execute(
            select(PolicyRow).where(
                PolicyRow.number == policy.number, PolicyRow.expires_on == policy.expires_on
            )
        )
    ).scalar_one_or_none()
    if row is None:
        row = PolicyRow(number=policy.number, expires_on=policy.expires_on)
        session.add(row)
    row.product = policy.product.value
    row.product_code = policy.product_code
    row.bank = policy.bank.value if policy.bank else None
    row.first_prolongation_year = policy.first_prolongation_year
    row.renewal_centre = policy.renewal_centre
    row.client_id = client_row.id
    row.agent_id = agent.id
    row.regional_centre_id = centre.id if centre else None
    await session.flush()
    return row
