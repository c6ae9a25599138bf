"""`python -m bench.compare NAME=RESULT.json …`: our burst figures side by side (e.g. worker variants).

Writes a markdown table to stdout; the first result is the reference for the ratios.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

FIGURES: list[tuple[str, Any]] = [
    ("worker variants", lambda o: o.get("worker_variants") or "none (production worker.py)"),
    ("worker processes", lambda o: o.get("worker_processes", 1)),
    ("intake done before due", lambda o: not o["intake_overran_due"]),
    ("`renewals start`, journeys/s", lambda o: o["start_rate_per_s"]),
    ("drain, journeys/s", lambda o: o["drain_journeys_per_s"]),
    ("drain, sends/s", lambda o: o["drain_messages_per_s"]),
    ("first send after due, s", lambda o: o["first_send_after_due_s"]),
    ("send lateness p50, s", lambda o: o["send_lateness_s"]["p50"]),
    ("send lateness p95, s", lambda o: o["send_lateness_s"]["p95"]),
    ("send lateness p99, s", lambda o: o["send_lateness_s"]["p99"]),
    ("send lateness max, s", lambda o: o["send_lateness_s"]["max"]),
    (
        "claim → sent inside the activity p50, s",
        lambda o: o["where_the_time_goes_s"]["claim_to_sent_in_activity"]["p50"],
    ),
    (
        "claim → sent inside the activity p99, s",
        lambda o: o["where_the_time_goes_s"]["claim_to_sent_in_activity"]["p99"],
    ),
    ("'database is locked' (10 s busy timeout)", lambda o: o["worker_log"]["database_is_locked"]),
    ("worker CPU, % of a core", lambda o: o["cpu_during_drain"]["worker_cpu_pct"]),
    ("second worker's CPU, % of a core", lambda o: o["cpu_during_drain"].get("worker2_cpu_pct", "—")),
    (
        "  of which the Python main thread",
        lambda o: o["cpu_during_drain"]["worker_threads_cpu_pct"].get("python main thread"),
    ),
    ("dev server CPU, % of a core", lambda o: o["cpu_during_drain"]["server_cpu_pct"]),
    ("machine busy, % of all cores", lambda o: o["cpu_during_drain"]["machine_busy_pct_of_all_cores"]),
    ("worker RSS peak in the burst, MiB", lambda o: o["worker_rss_peak_during_drain_mib"]),
    ("exactly once", lambda o: o["correctness"]["exactly_once"]),
]


def main(argv: list[str]) -> None:
    runs: list[tuple[str, dict[str, Any]]] = []
    for arg in argv:
        name, _, path = arg.partition("=")
        result = json.loads(Path(path).read_text())
        runs.append((name, next(b["ours"] for b in result["bursts"].values() if "ours" in b)))
    print("| figure | " + " | ".join(name for name, _ in runs) + " |")
    print("|---|" + "---:|" * len(runs))
    for label, get in FIGURES:
        cells = []
        for _, ours in runs:
            try:
                cells.append(str(get(ours)))
            except (KeyError, TypeError):
                cells.append("—")
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
