"""«Дашборд агента. Возобновления»: each agent's renewal rate per line against the seed's norms.

The rate is computed from finished journeys (table `journeys`): paid or renewed is a secured renewal;
lapsed, refused and opted_out are lost ones; cancelled policies and running journeys are not counted.
A КАСКО + ОСАГО policy counts for both lines; mortgage has no norm and no line. The gate column says
whether the company's base SMS are suppressed today for that agent's single-line policies, and which
rate it reads: the agent card's (table `agents`) or, with `RENEWALS_GATE_RATES=measured` and enough
finished policies in the trailing window, the measured one (`agent_measured_rates`, renewals/agent_rates.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.table import Table
from sqlalchemy import select

from renewals.agent_rates import gate_rates, measured_counts
from renewals.db.database import Database
from renewals.db.tables import AgentRow
from renewals.models import Line
from renewals.reports.html import Bar, bar_chart, page, table
from renewals.rules import RENEWAL_NORMS

LINE_NAMES = {Line.KASKO: "КАСКО", Line.OSAGO: "ОСАГО", Line.IFL: "ИФЛ"}


@dataclass(frozen=True)
class AgentLine:
    agent_id: str
    agent_name: str
    line: Line
    secured: int
    lost: int
    card_rate: float | None  # the rate on the agent card
    measured_gate_rate: float | None = None  # the measured rate, when the gate uses it instead

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
    def gate_rate(self) -> float | None:
        return self.measured_gate_rate if self.measured_gate_rate is not None else self.card_rate

    @property
    def gate_source(self) -> str:
        return "measured" if self.measured_gate_rate is not None else "card"

    @property
    def gate_suppresses(self) -> bool:
        """The gate's rule for a single-line policy of this line (rules.gate_reason)."""
        return self.gate_rate is not None and self.gate_rate >= self.norm


async def agent_dashboard(db: Database) -> list[AgentLine]:
    async with db.session() as session:
        agents = {row.id: row for row in (await session.scalars(select(AgentRow))).all()}
    counts = await measured_counts(db)
    used = await gate_rates(db)
    result = []
    for agent_id in sorted(set(agents) | {agent for agent, _ in counts}):
        row = agents.get(agent_id)
        card = {Line.KASKO: row.rate_kasko, Line.OSAGO: row.rate_osago, Line.IFL: row.rate_ifl} if row else {}
        for line in Line:
            measured = counts.get((agent_id, line))
            secured, lost = (measured.secured, measured.lost) if measured else (0, 0)
            result.append(
                AgentLine(
                    agent_id,
                    row.name if row else "?",
                    line,
                    secured,
                    lost,
                    card.get(line),
                    used.get(agent_id, {}).get(line),
                )
            )
    return result


HEADERS = (
    "agent", "line", "secured", "lost", "rate", "norm", "vs norm", "card rate", "gate reads", "company SMS",
)  # fmt: skip


def _gate(item: AgentLine) -> str:
    return f"{item.gate_source} {_pct(item.gate_rate)}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def _verdict(item: AgentLine) -> str:
    return {None: "no data", True: "meets", False: "below"}[item.meets_norm]


def dashboard_table(items: list[AgentLine]) -> Table:
    grid = Table(title="Дашборд агента. Возобновления")
    for column in HEADERS:
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
            _gate(item),
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
            _gate(i),
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
    body = (
        "<p>Renewal rate = secured (paid, renewed) / finished (secured + lapsed, refused, opted out); "
        "cancelled policies are not counted. Norms: КАСКО, ОСАГО 75 %+, ИФЛ 80 %+. "
        "«gate reads»: the rate the agent-performance gate uses — the card's, or the measured one "
        "(RENEWALS_GATE_RATES=measured, enough finished policies in the window).</p>"
        f"{chart}{table(HEADERS, rows, classes)}"
    )
    return page("Дашборд агента. Возобновления", body)
