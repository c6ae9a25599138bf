"""The benchmark's own arithmetic (bench/): the lead before a burst's touchpoint, the spread's sizing,
percentiles, and which of issue 14's targets a run's figures meet. The runs themselves are not tests
(they take minutes and a quiet machine); these are the rules that decide what a run reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.__main__ import OPERATOR_SPREAD_LOAD, parse, sized_spread_minutes, slowest
from bench.phases.burst import FIRST_TASKS_MARGIN, FIRST_TASKS_PER_S, lead_seconds
from bench.phases.common import percentiles
from bench.report import render_markdown, targets

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results"


def test_the_lead_counts_on_a_share_of_the_measured_first_task_rate() -> None:
    assert lead_seconds(1000, 0.4) == pytest.approx(10 + 2 + 1000 / FIRST_TASKS_PER_S)
    # A machine at half speed measured 20 first tasks/s: 10,000 journeys get 10,000 / 14 s, not / 50.
    assert lead_seconds(10_000, 2.0, first_tasks_per_s=20) == pytest.approx(
        10 + 10 + 10_000 / (FIRST_TASKS_MARGIN * 20)
    )


def test_the_spread_is_sized_at_a_share_of_the_drain() -> None:
    assert sized_spread_minutes(10_000, 30.0, 0.5) == 12  # 10,000 / 15 per s = 667 s
    assert sized_spread_minutes(10_000, 30.0, 0.8) == 7
    assert sized_spread_minutes(1_000, 1_000.0, 0.8) == 1  # never under a minute
    assert sized_spread_minutes(10_000, None, 0.8) is None  # no burst drained: nothing to size from


def test_the_bench_sizes_its_spread_by_the_operators_rule() -> None:
    # 0.8 of a warm burst's drain queued the spread's cold wake-ups; the bench measures the rule it gives.
    assert parse([]).spread_load == OPERATOR_SPREAD_LOAD == 0.5


def test_the_spread_is_sized_from_the_slowest_one_worker_burst() -> None:
    on_server = {
        "baseline": {"drain_journeys_per_s": 1.0},  # bare Temporal: not ours
        "ours": {"drain_journeys_per_s": 30.0, "first_tasks_per_s": 60.0},
        "ours_postgresql": {"drain_journeys_per_s": 24.0, "first_tasks_per_s": 62.0},
        "ours_postgresql_w2": {"drain_journeys_per_s": 10.0, "first_tasks_per_s": 20.0},  # two workers
    }
    assert slowest(on_server, "drain_journeys_per_s", "first_tasks_per_s") == (24.0, 60.0)
    assert slowest({"ours": {"drain_journeys_per_s": 30.0}}, "first_tasks_per_s") == (None,)


def test_percentiles_pick_observed_values() -> None:
    found = percentiles(float(i) for i in range(1, 101))
    assert found == {"p50": 50.0, "p95": 95.0, "p99": 99.0, "max": 100.0}
    assert percentiles([]) == {"p50": None, "p95": None, "p99": None, "max": None}


def _burst(**ours: Any) -> dict[str, Any]:
    base = {"start_rate_per_s": 200.0, "drain_workflows_per_s": 40.0, "completion_lateness_s": {"p99": 20.0}}
    mine = {
        "n": 1000,
        "intake_rate_per_s": 180.0,
        "drain_journeys_per_s": 20.0,
        "send_lateness_s": {"p99": 30.0},
        "correctness": {"exactly_once": True},
    } | ours
    return {"baseline": base, "ours": mine}


def _met(rows: list[dict[str, Any]]) -> dict[str, tuple[Any, bool | None]]:
    return {
        row["target"].split(": ", 1)[1] if ": " in row["target"] else row["target"]: (
            row["value"],
            row["met"],
        )
        for row in rows
    }


def test_targets_are_ratios_to_bare_temporal_in_the_same_run() -> None:
    rows = _met(targets({"bursts": {"memory": _burst()}}))
    assert rows["intake ≥ 0.9× bare start rate"] == (0.9, True)
    assert rows["burst drain ≥ 0.5× bare (stretch 0.8×) at N=1000"] == (0.5, True)
    assert rows["send lateness p99 ≤ 1.5× bare's p99"] == (1.5, True)
    slower = _met(
        targets({"bursts": {"memory": _burst(drain_journeys_per_s=19.6, send_lateness_s={"p99": 31.0})}})
    )
    assert slower["burst drain ≥ 0.5× bare (stretch 0.8×) at N=1000"] == (0.49, False)
    assert slower["send lateness p99 ≤ 1.5× bare's p99"] == (1.55, False)


def test_a_lost_or_repeated_message_fails_its_burst() -> None:
    rows = targets({"bursts": {"memory": _burst(correctness={"exactly_once": False})}})
    assert {"target": "memory, ours: every message exactly once", "value": False, "met": False} in rows


def test_memory_targets_judge_asleep_and_peak_rss_in_megabytes_and_need_100k_for_flat_and_restart() -> None:
    def memory(peak_mib: float, last: int, survived: bool, asleep_mib: float = 272.0) -> dict[str, Any]:
        steps = [
            {"sleeping": 1000, "rss_mib": 241.0, "rss_peak_in_step_mib": 250.0},
            {"sleeping": last, "rss_mib": asleep_mib, "rss_peak_in_step_mib": peak_mib},
        ]
        restart = {"sleeping_before": last, "survived": survived}
        return {"memory": {"steps": steps, "flat_ratio_last_to_first": 1.13, "restart": restart}}

    rows = _met(targets(memory(288.0, 100_000, True)))  # 288 MiB = 302 MB: over; asleep 272 MiB = 285 MB
    assert rows["worker RSS ≤ 300 MB with the journeys asleep, MB"] == (285.2, True)
    assert rows["worker RSS ≤ 300 MB at its peak while they are started, MB"] == (302.0, False)
    assert rows["worker RSS flat from 1k to 100,000 (last/first ≤ 1.2)"] == (1.13, True)
    assert rows["100,000 sleeping journeys survive a dev-server restart (≈ 125k)"] == ("yes", True)
    swollen = _met(targets(memory(290.0, 100_000, True, asleep_mib=287.0)))  # 287 MiB = 300.9 MB asleep
    assert swollen["worker RSS ≤ 300 MB with the journeys asleep, MB"] == (300.9, False)
    small = _met(targets(memory(280.0, 10_000, True)))  # 280 MiB = 294 MB; 10k proves neither
    assert small["worker RSS ≤ 300 MB with the journeys asleep, MB"] == (285.2, True)
    assert small["worker RSS ≤ 300 MB at its peak while they are started, MB"] == (293.6, True)
    assert small["worker RSS flat from 1k to 10,000 (last/first ≤ 1.2)"] == (1.13, None)
    assert small["10,000 sleeping journeys survive a dev-server restart (≈ 125k)"] == ("yes", None)


def test_the_committed_latest_run_renders_with_its_targets() -> None:
    result = json.loads((RESULTS / "latest.json").read_text(encoding="utf-8"))
    markdown = render_markdown(result)
    for row in targets(result):
        assert row["target"] in markdown
    assert "exactly once" in markdown


def test_the_whole_run_is_held_to_15_minutes_only_at_the_defaults() -> None:
    spread = {"n": 10_000, "spread_minutes": 12, "lead_seconds": 265.9, "send_lateness_s": {"p99": 2.38}}
    spread |= {"correctness": {"exactly_once": True}}
    run = {"bursts": {"memory": _burst() | {"ours_spread": spread}}, "wall_seconds": 1282.8}
    rows = _met(targets(run | {"at_defaults": True}))
    assert rows["the whole run ≤ 15 min at the defaults, s"] == (1282.8, False)
    assert rows["the spread phase's window + lead, s (its share of the whole run)"] == (985.9, None)
    assert _met(targets(run | {"at_defaults": True, "wall_seconds": 880.0}))[
        "the whole run ≤ 15 min at the defaults, s"
    ] == (880.0, True)
    assert _met(targets(run | {"at_defaults": False}))["the whole run ≤ 15 min at the defaults, s"] == (
        1282.8,
        None,
    )


def test_only_flags_that_change_what_is_measured_leave_the_defaults() -> None:
    from bench.__main__ import at_defaults, parse

    assert at_defaults(parse([]))
    assert at_defaults(parse(["--out", "/tmp/elsewhere", "--workdir", "/tmp/scratch"]))
    assert not at_defaults(parse(["--spread-n", "0"]))
    assert not at_defaults(parse(["--full"]))
