"""`renewals experiments report`: per experiment, the uplift overall and by product and segment, and
the last-touch attribution of the treated arm's secured renewals. Terminal table, CSV, static HTML."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from rich.console import Group
from rich.table import Table

from renewals.db.database import Database
from renewals.experiments.assignment import Arm
from renewals.experiments.attribution import Attribution, attribute
from renewals.experiments.outcomes import Outcome, outcomes
from renewals.experiments.uplift import Uplift, uplift
from renewals.reports.html import Bar, bar_chart, page, table

BREAKDOWNS: dict[str, Callable[[Outcome], str]] = {
    "all": lambda _: "all",
    "product": lambda o: o.product,
    "segment": lambda o: o.segment,
}
CSV_COLUMNS = (
    "experiment", "breakdown", "value", "treated", "treated_secured", "held_out", "held_out_secured",
    "treated_rate", "held_out_rate", "uplift_pp", "ci95_low_pp", "ci95_high_pp", "p_value",
    "needed_per_arm", "detect_pp",
)  # fmt: skip


@dataclass(frozen=True)
class UpliftRow:
    experiment: str
    breakdown: str
    value: str
    result: Uplift


@dataclass
class ExperimentReport:
    today: date
    detect_pp: float
    rows: list[UpliftRow] = field(default_factory=list)
    attribution: dict[str, Attribution] = field(default_factory=dict)


def summarise(found: list[Outcome], detect_pp: float) -> list[UpliftRow]:
    """The uplift rows of these outcomes: per experiment, overall and per product and segment."""
    rows = []
    for breakdown, key in BREAKDOWNS.items():
        cells: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        for outcome in found:
            cell = cells[outcome.experiment, key(outcome)]
            offset = 0 if outcome.arm == Arm.TREATMENT.value else 2
            cell[offset] += 1
            cell[offset + 1] += int(outcome.secured)
        for (experiment, value), (n_t, s_t, n_h, s_h) in sorted(cells.items()):
            rows.append(UpliftRow(experiment, breakdown, value, uplift(n_t, s_t, n_h, s_h, detect_pp)))
    order = {name: index for index, name in enumerate(BREAKDOWNS)}
    return sorted(rows, key=lambda r: (r.experiment, order[r.breakdown], r.value))


async def experiment_report(
    db: Database, today: date, window_days: int = 7, detect_pp: float = 2.0
) -> ExperimentReport:
    found = await outcomes(db, today)
    report = ExperimentReport(today, detect_pp, summarise(found, detect_pp))
    for name in sorted({o.experiment for o in found}):
        treated = [o for o in found if o.experiment == name and o.arm == Arm.TREATMENT.value and o.secured]
        report.attribution[name] = await attribute(db, treated, window_days)
    return report


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _pp(value: float | None) -> str:
    return "—" if value is None else f"{value:+.1f}"


def _cells(row: UpliftRow) -> list[str]:
    r = row.result
    interval = "—" if r.low_pp is None or r.high_pp is None else f"[{r.low_pp:+.1f}, {r.high_pp:+.1f}]"
    return [
        row.experiment,
        row.value if row.breakdown == "all" else f"{row.breakdown}: {row.value}",
        f"{r.treated_secured}/{r.treated}",
        _pct(r.treated_rate),
        f"{r.held_out_secured}/{r.held_out}",
        _pct(r.held_out_rate),
        _pp(r.uplift_pp),
        interval,
        "—" if r.p_value is None else f"{r.p_value:.3f}",
        "—" if r.needed_per_arm is None else str(r.needed_per_arm),
    ]


HEADERS = (
    "experiment", "group", "treated secured", "rate", "held out secured", "rate", "uplift, pp", "95 % CI, pp",
    "p", "needed per arm",
)  # fmt: skip


def _attribution_rows(name: str, found: Attribution) -> list[list[str]]:
    rows = []
    for template, count in found.by_last_touch.most_common():
        engaged = found.engaged_by_last_touch[template]
        sent = found.sent_by_template.get(template)
        rows.append(
            [name, template, str(count), f"{engaged / count:.0%}", "—" if sent is None else str(sent)]
        )
    return rows


ATTRIBUTION_HEADERS = ("experiment", "last touch", "secured renewals", "engaged first", "sent")


def report_tables(report: ExperimentReport) -> Group:
    uplift_table = Table(title=f"Uplift of the reminders (terms ended before {report.today})")
    for header in HEADERS:
        uplift_table.add_column(header)
    for row in report.rows:
        uplift_table.add_row(*_cells(row))
    touch = Table(title="Last touch before a secured renewal (treated arm)")
    for header in ATTRIBUTION_HEADERS:
        touch.add_column(header)
    for name, found in report.attribution.items():
        for cells in _attribution_rows(name, found):
            touch.add_row(*cells)
    return (
        Group(uplift_table, touch, _power_note(report))
        if report.rows
        else Group("no experiment has ended terms yet")
    )


def _power_note(report: ExperimentReport) -> str:
    return f"needed per arm: treated journeys to detect +{report.detect_pp:g} pp at 80 % power, α = 0.05"


def report_csv(report: ExperimentReport) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for row in report.rows:
        r = row.result
        writer.writerow(
            [
                row.experiment, row.breakdown, row.value, r.treated, r.treated_secured, r.held_out,
                r.held_out_secured, _num(r.treated_rate), _num(r.held_out_rate), _num(r.uplift_pp),
                _num(r.low_pp), _num(r.high_pp), _num(r.p_value), r.needed_per_arm or "", r.detect_pp,
            ]
        )  # fmt: skip
    return buffer.getvalue()


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def report_html(report: ExperimentReport) -> str:
    overall = [row for row in report.rows if row.breakdown == "all"]
    bars = []
    for row in overall:
        for arm, rate in (("treated", row.result.treated_rate), ("held out", row.result.held_out_rate)):
            colour = "#3b6fb6" if arm == "treated" else "#999999"
            bars.append(Bar(f"{row.experiment}: {arm}", (rate or 0) * 100, colour, _pct(rate)))
    attribution = [
        cells for name, found in report.attribution.items() for cells in _attribution_rows(name, found)
    ]
    body = "".join(
        [
            "<h2>Secured by the end of cover, per arm</h2>",
            bar_chart(bars, 100) if bars else "<p>no experiment has ended terms yet</p>",
            "<h2>Uplift</h2>",
            table(HEADERS, [_cells(row) for row in report.rows]),
            f"<p>{_power_note(report)}</p>",
            "<h2>Last touch before a secured renewal (treated arm)</h2>",
            table(ATTRIBUTION_HEADERS, attribution),
        ]
    )
    return page(f"Experiments: uplift of the reminders, terms ended before {report.today}", body)
