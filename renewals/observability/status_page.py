"""The status page the webhook service serves at `/status`, for those without Grafana: journeys by
stage, today's sends by channel, the channel pauses in force, the outbox backlog and the operator
tasks. One self-contained HTML page (no script, no CDN), refreshed by the browser every 30 s; only
counts, never a client, a policy or a journey id. The numbers are `gauges.DatabaseGauges.read`'s, the
same the worker's metrics publish.
"""

from __future__ import annotations

from html import escape

from renewals.journey_api import Stage
from renewals.observability.gauges import SEND_CHANNELS, TASK_STATUSES, Snapshot
from renewals.observability.logs import mask_personal

STATUSES = ("sent", "suppressed", "failed", "pending")
STYLE = """
body { font: 15px/1.4 system-ui, sans-serif; margin: 2em; color: #1d2733; background: #f6f8fa; }
h1 { font-size: 1.5em; margin: 0 0 .2em; } h2 { font-size: 1.1em; margin: 1.4em 0 .4em; }
.when { color: #5b6b7c; margin-bottom: 1em; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 1.2em; }
section { background: #fff; border: 1px solid #d8dee4; border-radius: 8px; padding: .4em 1.2em 1em; }
table { border-collapse: collapse; width: 100%; } th, td { padding: .25em .6em; text-align: right; }
th:first-child, td:first-child { text-align: left; } thead th { border-bottom: 1px solid #d8dee4; }
.ok { color: #1a7f37; font-weight: 600; } .alert { color: #cf222e; font-weight: 600; }
.zero { color: #9aa5b1; }
"""


def _cell(value: int | float) -> str:
    shown = f"{value:,.0f}".replace(",", "\u202f")
    return f'<td class="zero">{shown}</td>' if not value else f"<td>{shown}</td>"


def _age(seconds: float) -> str:
    if seconds <= 0:
        return "—"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def render_status_page(snap: Snapshot) -> str:
    stages = "".join(
        f"<tr><td>{stage.value}</td>{_cell(snap.journeys.get(stage.value, 0))}</tr>" for stage in Stage
    )
    total = sum(snap.journeys.values())
    head = "".join(f"<th>{status}</th>" for status in STATUSES)
    sends = "".join(
        f"<tr><td>{channel.value}</td>"
        + "".join(_cell(snap.sends_today.get((channel.value, status), 0)) for status in STATUSES)
        + "</tr>"
        for channel in SEND_CHANNELS
    )
    if snap.pauses:
        pause_block = "".join(
            f'<p><span class="alert">{escape(p.channel)} paused</span> until {p.until:%Y-%m-%d %H:%M} UTC'
            f"<br>{escape(mask_personal(p.reason))}</p>"
            for p in snap.pauses
        )
    else:
        pause_block = '<p class="ok">No channel is paused.</p>'
    backlog = "".join(
        f"<tr><td>{channel.value}</td>{_cell(snap.pending.get(channel.value, 0))}"
        f"<td>{_age(snap.oldest_pending.get(channel.value, 0.0))}</td></tr>"
        for channel in SEND_CHANNELS
    )
    tasks = "".join(
        f"<tr><td>{status}</td>{_cell(snap.tasks.get(status, 0))}</tr>" for status in TASK_STATUSES
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="30">
<title>Prolongation journeys — status</title><style>{STYLE}</style></head>
<body>
<h1>Prolongation journeys — status</h1>
<div class="when">as of {snap.taken_at:%Y-%m-%d %H:%M:%S} UTC · refreshes every 30 s ·
metrics for Prometheus at <a href="/metrics">/metrics</a></div>
<div class="grid">
<section><h2>Journeys by stage ({total})</h2><table><tbody>{stages}</tbody></table></section>
<section><h2>Sends today by channel (UTC day)</h2>
<table><thead><tr><th>channel</th>{head}</tr></thead><tbody>{sends}</tbody></table></section>
<section><h2>Channel pauses</h2>{pause_block}</section>
<section><h2>Outbox backlog</h2><table>
<thead><tr><th>channel</th><th>unsettled</th><th>oldest</th></tr></thead><tbody>{backlog}</tbody></table>
<h2>Operator tasks</h2><table><tbody>{tasks}
<tr><td>oldest not closed</td><td>{_age(snap.oldest_open_task)}</td></tr></tbody></table></section>
</div>
</body></html>
"""
