"""Agents' renewal rates as this system measures them, for the agent-performance gate.

«Если система видит, что вы вовремя ... пролонгируете договоры»: besides the rates imported on the agent
card, the gate can use each agent's rate from this system's own outcomes — secured (paid, renewed) over
finished (secured + lapsed, refused, opted out) among the terms that ended in a trailing window — once an
agent has at least `min_policies` finished terms in a line (fewer say too little; the card's rate is
used instead). `RENEWALS_GATE_RATES=measured` turns it on; `refresh` (run by `renewals start` and the
daily intake before they start journeys) writes the rates that count to `agent_measured_rates`, and
the policy store puts them on the agent card every journey receives, so a journey's input says which
rates its gate saw, and its replays see the same.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import delete, select

from renewals.db.database import Database
from renewals.db.tables import JourneyRow
from renewals.db.tables_experiments import AgentMeasuredRateRow
from renewals.journey_api import SECURED_STAGES, Stage
from renewals.models import Line, Product
from renewals.rules import LINES_OF_PRODUCT

LOST_STAGES = frozenset({Stage.LAPSED, Stage.REFUSED, Stage.OPTED_OUT})


@dataclass(frozen=True)
class Measured:
    secured: int
    lost: int

    @property
    def finished(self) -> int:
        return self.secured + self.lost

    @property
    def rate(self) -> float | None:
        return self.secured / self.finished if self.finished else None


async def measured_counts(
    db: Database, today: date | None = None, window_days: int | None = None
) -> dict[tuple[str, Line], Measured]:
    """Secured and lost terms per (agent, line), from the journeys' outcomes (table `journeys`); with a
    window, only the terms that ended in the `window_days` before `today`. A КАСКО + ОСАГО policy counts
    for both lines; mortgage has none; cancelled and running journeys do not count."""
    query = select(JourneyRow.agent_id, JourneyRow.product, JourneyRow.stage)
    if today is not None and window_days is not None:
        query = query.where(
            JourneyRow.expires_on < today, JourneyRow.expires_on >= today - timedelta(days=window_days)
        )
    async with db.session() as session:
        journeys = (await session.execute(query)).all()
    counts: dict[tuple[str, Line], list[int]] = defaultdict(lambda: [0, 0])
    for agent_id, product, stage in journeys:
        try:
            lines, kept = LINES_OF_PRODUCT[Product(product)], Stage(stage)
        except ValueError:
            continue
        for line in lines:
            if kept in SECURED_STAGES:
                counts[agent_id, line][0] += 1
            elif kept in LOST_STAGES:
                counts[agent_id, line][1] += 1
    return {key: Measured(secured, lost) for key, (secured, lost) in counts.items()}


async def refresh(db: Database, today: date, use_measured: bool, window_days: int, min_policies: int) -> int:
    """Rewrite `agent_measured_rates`: the measured rates that count for the gate, or none at all when
    the gate uses the card's. Returns how many (agent, line) rates the gate will use."""
    counts = await measured_counts(db, today, window_days) if use_measured else {}
    rows = [
        AgentMeasuredRateRow(
            agent_id=agent_id,
            line=line.value,
            rate=measured.rate,
            secured=measured.secured,
            finished=measured.finished,
            window_days=window_days,
            computed_on=today,
        )
        for (agent_id, line), measured in sorted(counts.items())
        if measured.rate is not None and measured.finished >= min_policies
    ]
    async with db.session() as session, session.begin():
        await session.execute(delete(AgentMeasuredRateRow))
        session.add_all(rows)
    return len(rows)


async def gate_rates(db: Database) -> dict[str, dict[Line, float]]:
    """The measured rates the gate uses now, per agent: they replace the card's rate of that line."""
    async with db.session() as session:
        rows = (await session.scalars(select(AgentMeasuredRateRow))).all()
    rates: dict[str, dict[Line, float]] = defaultdict(dict)
    for row in rows:
        rates[row.agent_id][Line(row.line)] = row.rate
    return dict(rates)
