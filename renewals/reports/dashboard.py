"""«Дашборд агента. Возобновления»: each agent's renewal rate per line against the seed's norms.

The rate is computed from finished journeys (table `journeys`): paid or renewed is a secured renewal;
lapsed, refused and opted_out are lost ones; cancelled policies and running journeys are not counted.
A КАСКО + ОСАГО policy counts for both lines; mortgage has no norm and no line. The gate column says
whether the company's base SMS are suppressed today for that agent's single-line policies — the gate
reads the agent card's rates (table `agents`), which may lag behind the computed ones.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from rich.table import Table
from sqlalchemy import select

from renewals.db.database import Database
from renewals.db.tables import AgentRow, JourneyRow
from renewals.journey_api import SECURED_STAGES, Stage
from renewals.models import Line, Product
from renewals.reports.html import Bar, bar_chart, page, table
from renewals.rules import LINES_OF_PRODUCT, RENEWAL_NORMS

LOST_STAGES = frozenset({Stage.LAPSED, Stage.REFUSED, Stage.OPTED_OUT})
LINE_NAMES = {Line.KASKO: "КАСКО", Line.OSAGO: "ОСАГО", Line.IFL: "ИФЛ"}


@dataclass(frozen=True)
class AgentLine:
    agent_id: str
    agent_name: str
    line: Line
    secured: int
    lost: int
    card_rate: float | None  # the rate on the agent card, which the gate uses

    @property
    def finished(self) -> int:
        return self.secured + self.lost

    @property
    def rate(self) -> float | None:
        return self.secured / self.finished if self.finished else None

    @property
    def norm(self) -> float:
        return RENEWAL_NORMS[self.line]

    @property
    def meets_norm(self) -> bool | None:
        return None if self.rate is None else self.rate >= self.norm

    @property
    def gate_suppresses(self) -> bool:
        """The gate's rule for a single-line policy of this line (rules.gate_reason)."""
        return self.card_rate is not None and self.card_rate >= self.norm


async def agent_dashboard(db: Database) -> list[AgentLine]:
    async with db.session() as session:
        agents = {row.id: row for row in (await session.scalars(select(AgentRow))).all()}
        journeys = (
            await session.execute(select(JourneyRow.agent_id, JourneyRow.product, JourneyRow.stage))
        ).all()
    counts: dict[tuple[str, Line], list[int]] = defaultdict(lambda: [0, 0])
    for agent_id, product, stage in journeys:
        try:
            lines = LINES_OF_PRODUCT[Product(product)]
            kept = Stage(stage)
        except ValueError:
            continue
        for line in lines:
            if kept in SECURED_STAGES:
                counts[agent_id, line][0] += 1
            elif kept in LOST_STAGES:
                counts[agent_id, line][1] += 1
    result = []
    for agent_id in sorted(set(agents) | {agent for agent, _ in counts}):
        row = agents.get(agent_id)
        card = {Line.KASKO: row.rate_kasko, Line.OSAGO: row.rate_osago, Line.IFL: row.rate_ifl} if row else {}
        for line in Line:
            secured, lost = counts.get((agent_id, line), [0, 0])
            result.append(AgentLine(agent_id, row.name if row else "?", line, secured, lost, card.get(line)))
    return result


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def _verdict(item: AgentLine) -> str:
    return {None: "no data", True: "meets", False: "below"}[item.meets_norm]


def dashboard_table(items: list[AgentLine]) -> Table:
    grid = Table(title="Дашборд агента. Возобновления")
    for column in ("agent", "line", "secured", "lost", "rate", "norm", "vs norm", "card rate", "company SMS"):
        grid.add_column(column, justify="left" if column in ("agent", "line") else "right")
    for item in items:
        style = {True: "green", False: "red", None: "dim"}[item.meets_norm]
        grid.add_row(
            f"{item.agent_id} {item.agent_name}",
            LINE_NAMES[item.line],
            str(item.secured),
            str(item.lost),
            _pct(item.rate),
            _pct(item.norm),
            _verdict(item),
            _pct(item.card_rate),
            "suppressed" if item.gate_suppresses else "sent",
            style=style,
        )
    return grid


def dashboard_html(items: list[AgentLine]) -> str:
    rows = [
        [
            f"{i.agent_id} {i.agent_name}",
            LINE_NAMES[i.line],
            str(i.secured),
            str(i.lost),
            _pct(i.rate),
            _pct(i.norm),
            _verdict(i),
            _pct(i.card_rate),
            "suppressed" if i.gate_suppresses else "sent",
        ]
        for i in items
    ]
    classes = [{True: "ok", False: "bad", None: "muted"}[i.meets_norm] for i in items]
    charted = [i for i in items if i.rate is not None]
    bars = [
        Bar(
            f"{i.agent_id} · {LINE_NAMES[i.line]}",
            i.rate or 0.0,
            "#1b7f3b" if i.meets_norm else "#b3261e",
            f"{_pct(i.rate)} (норматив {_pct(i.norm)})",
        )
        for i in charted
    ]
    chart = bar_chart(bars, 1.0, [(index, i.norm) for index, i in enumerate(charted)])
    headers = ["agent", "line", "secured", "lost", "rate", "norm", "vs norm", "card rate", "company SMS"]
    body = (
        "<p>Renewal rate = secured (paid, renewed) / finished (secured + lapsed, refused, opted out); "
        "cancelled policies are not counted. Norms: КАСКО, ОСАГО 75 %+, ИФЛ 80 %+. "
        "«company SMS: suppressed» — the gate reads the agent card's rate.</p>"
        f"{chart}{table(headers, rows, classes)}"
    )
    return page("Дашборд агента. Возобновления", body)
