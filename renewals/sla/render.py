"""The weekly report in three forms: a terminal table (`rich`), CSV (one metric per row, easy to pivot)
and a static HTML page whose charts are inline SVG — no scripts, no CDN, opens offline."""

from __future__ import annotations

import csv
import io
from html import escape

from rich.console import Console
from rich.table import Table

from renewals.sla.report import GroupReport, WeeklyReport


def minutes(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds / 60:.1f}"


def share(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def print_report(report: WeeklyReport, console: Console | None = None) -> None:
    console = console or Console()
    console.print(
        f"[bold]SLA report, week {report.week}[/bold] ({report.start:%d.%m.%Y}–{report.end:%d.%m.%Y})"
    )
    summary = Table(title="Applications")
    for column in (
        "scope",
        "apps",
        "within SLA",
        "issuance mean, min",
        "escalations",
        "repeated",
        "breached apps",
        "delays",
    ):
        summary.add_column(column)
    for group in report.groups:
        summary.add_row(
            group.scope,
            str(group.applications),
            f"{group.within_sla} ({share(group.within_sla_share)})",
            minutes(group.mean_issuance_seconds),
            str(group.escalations),
            str(group.repeated_breaches),
            f"{group.breached_applications}" + (" → dedicated channel" if group.dedicated_channel else ""),
            ", ".join(f"{reason} {count}" for reason, count in group.delay_reasons.items()) or "—",
        )
    console.print(summary)
    if report.dedicated_channel_partners:
        console.print(
            "Partners with ≥ 2 breached applications (raise a process correction or a dedicated "
            f"support channel): {', '.join(report.dedicated_channel_partners)}"
        )
    times = Table(title="Time in status, business minutes (median / p90)")
    times.add_column("scope")
    statuses = [s.status for s in report.groups[0].statuses] if report.groups else []
    for status in statuses:
        times.add_column(status.value)
    for group in report.groups:
        cells = {s.status: f"{minutes(s.median_seconds)} / {minutes(s.p90_seconds)}" for s in group.statuses}
        times.add_row(group.scope, *(cells.get(status, "—") for status in statuses))
    console.print(times)
    for group in report.groups:
        console.print(f"[italic]{group.scope}[/italic]: {group.one_liner}")


def report_csv(report: WeeklyReport) -> str:
    """Long format: week, scope, metric, key, value."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["week", "scope", "metric", "key", "value"])
    for group in report.groups:

        def row(metric: str, key: str, value: object, scope: str = group.scope) -> None:
            writer.writerow([report.week, scope, metric, key, "" if value is None else value])

        row("applications", "", group.applications)
        row("within_sla", "", group.within_sla)
        row(
            "within_sla_share",
            "",
            None if group.within_sla_share is None else round(group.within_sla_share, 4),
        )
        row("issued", "", group.issued)
        row("mean_issuance_minutes", "", _round_minutes(group.mean_issuance_seconds))
        row("escalations", "", group.escalations)
        row("repeated_breaches", "", group.repeated_breaches)
        row("breached_applications", "", group.breached_applications)
        row("dedicated_channel", "", int(group.dedicated_channel))
        for stats in group.statuses:
            row("median_minutes", stats.status.value, _round_minutes(stats.median_seconds))
            row("p90_minutes", stats.status.value, _round_minutes(stats.p90_seconds))
        for reason, count in group.delay_reasons.items():
            row("delay_reason", reason, count)
        row("one_liner", "", group.one_liner)
    return out.getvalue()


def _round_minutes(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 60, 2)


def _bars(title: str, rows: list[tuple[str, list[float]]], legend: list[str], unit: str) -> str:
    """A horizontal grouped bar chart as SVG; one row per label, one bar per series."""
    colours = ["#2f6fb3", "#e39b2d", "#4c9a5b"]
    bar, gap, label_w, chart_w = 14, 10, 170, 420
    peak = max((v for _, values in rows for v in values), default=0.0) or 1.0
    height = 30 + len(rows) * (len(legend) * bar + gap) + 20
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + chart_w + 80}" height="{height}" '
        f'role="img" aria-label="{escape(title)}">',
        f'<text x="0" y="16" font-weight="bold">{escape(title)}</text>',
    ]
    y = 30
    for label, values in rows:
        parts.append(f'<text x="0" y="{y + bar}" font-size="12">{escape(label)}</text>')
        for index, value in enumerate(values):
            width = chart_w * value / peak
            parts.append(
                f'<rect x="{label_w}" y="{y}" width="{width:.1f}" height="{bar - 2}" '
                f'fill="{colours[index % len(colours)]}"><title>{escape(legend[index])}: '
                f"{value:.1f} {unit}</title></rect>"
            )
            parts.append(
                f'<text x="{label_w + width + 4:.1f}" y="{y + bar - 3}" font-size="11">{value:.1f}</text>'
            )
            y += bar
        y += gap
    legend_x = 0
    for index, name in enumerate(legend):
        parts.append(
            f'<rect x="{legend_x}" y="{y}" width="10" height="10" fill="{colours[index % len(colours)]}"/>'
            f'<text x="{legend_x + 14}" y="{y + 10}" font-size="11">{escape(name)}</text>'
        )
        legend_x += 120
    parts.append("</svg>")
    return "".join(parts)


def _group_html(group: GroupReport) -> str:
    reasons = (
        "".join(f"<li>{escape(reason)}: {count}</li>" for reason, count in group.delay_reasons.items())
        or "<li>—</li>"
    )
    chart = _bars(
        f"{group.scope}: time in status, business minutes",
        [(s.status.value, [s.median_seconds / 60, s.p90_seconds / 60]) for s in group.statuses],
        ["median", "p90"],
        "min",
    )
    flag = (
        '<p class="flag">Two or more breached applications this week: raise a process correction '
        "or a dedicated support channel.</p>"
        if group.dedicated_channel
        else ""
    )
    return (
        f"<section><h2>{escape(group.scope)}</h2>"
        f'<p class="promise">{escape(group.one_liner)}</p>'
        "<table><tr><th>applications</th><th>within SLA</th><th>issued</th><th>mean issuance, min</th>"
        "<th>escalations</th><th>repeated breaches</th><th>breached applications</th></tr>"
        f"<tr><td>{group.applications}</td><td>{group.within_sla} ({share(group.within_sla_share)})</td>"
        f"<td>{group.issued}</td><td>{minutes(group.mean_issuance_seconds)}</td>"
        f"<td>{group.escalations}</td><td>{group.repeated_breaches}</td>"
        f"<td>{group.breached_applications}</td></tr></table>"
        f"{flag}<h3>Delay reasons</h3><ul>{reasons}</ul>{chart}</section>"
    )


def report_html(report: WeeklyReport) -> str:
    partners = [g for g in report.groups[1:]] or report.groups
    share_chart = _bars(
        "Share of applications within SLA, %",
        [(g.scope, [100 * (g.within_sla_share or 0.0)]) for g in partners],
        ["within SLA"],
        "%",
    )
    title = f"SLA report, week {escape(report.week)}"
    return (
        '<!doctype html><html lang="ru"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>"
        "body{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}"
        ".promise{font-size:1.1em;background:#f3f7fb;padding:.5em}"
        ".flag{background:#fdecea;padding:.5em}"
        "</style></head><body>"
        f"<h1>{title}</h1><p>{report.start:%d.%m.%Y} – {report.end:%d.%m.%Y}</p>"
        f"{share_chart}{''.join(_group_html(g) for g in report.groups)}</body></html>\n"
    )
