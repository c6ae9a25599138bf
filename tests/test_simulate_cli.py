"""`renewals simulate` as a user runs it: the JSON contract, and malformed input refused with exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from starter.simulate import ScenarioError, parse_scenarios
from tests.factories import scenario

NOW = datetime(2026, 11, 23, tzinfo=UTC)


def run_cli(tmp_path: Path, document: object) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "scenarios.json"
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "starter.cli", "simulate", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_prints_the_documented_json(tmp_path: Path) -> None:
    done = run_cli(tmp_path, {"scenarios": [scenario("s1", "OSAGO", first_prolongation_year=True)]})
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)["results"][0]
    assert set(result) == {"id", "workflow_id", "final_stage", "timeline"}
    assert (result["id"], result["workflow_id"], result["final_stage"]) == (
        "s1",
        "renewal-TEST-S1-20270420",
        "lapsed",
    )
    first = result["timeline"][0]
    assert set(first) == {"at", "day", "channel", "status", "reason", "template", "to", "text"}
    # day −30, in the window's first hour (the default 60-minute morning spread)
    assert first["at"].startswith("2027-03-21T09:") and first["at"].endswith("+03:00")
    assert first["text"].startswith("Иван Петрович, Ваш полис ОСАГО № TEST-s1 заканчивается 20.04.27.")


def _broken(**changes: Any) -> dict[str, Any]:
    data = scenario("bad-1", "KASKO")
    for dotted, value in changes.items():
        target = data
        *path, last = dotted.split("__")
        for key in path:
            target = target[key]
        target[last] = value
    return data


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"scenarios": [_broken(policy__client__phone=None)]}, "scenario bad-1: policy.client.phone:"),
        ({"scenarios": [_broken(policy__product="TRAVEL")]}, "scenario bad-1: policy.product:"),
        (
            {"scenarios": [_broken(policy__client__timezone="Mars/Base")]},
            "scenario bad-1: policy.client.timezone:",
        ),
        ({"scenarios": [_broken(now="2020-01-01T10:00:00+03:00")]}, "scenario bad-1: now: 2020-01-01"),
        ({"scenarios": [_broken(robot=["maybe"])]}, "scenario bad-1: robot[0]:"),
        ({"scenarios": [_broken(events=[{"day": -60, "type": "renewed"}])]}, "scenario bad-1: events[0]:"),
        ({"scenarios": [_broken(events=[{"type": "renewed"}])]}, "scenario bad-1: events[0]:"),
        ({"scenarios": [_broken(policy__product="MORTGAGE")]}, "scenario bad-1: policy: Value error, bank:"),
        ({"scenarios": [_broken(), _broken()]}, "scenario bad-1: id: used by more than one scenario"),
        ({"scenario": []}, 'input: expected {"scenarios": [...]}'),
    ],
)
def test_malformed_scenarios_name_the_scenario_and_field(document: object, message: str) -> None:
    with pytest.raises(ScenarioError) as error:
        parse_scenarios(document, NOW)
    assert str(error.value).startswith(message), str(error.value)


def test_cli_exits_2_with_one_line_for_a_malformed_scenario(tmp_path: Path) -> None:
    done = run_cli(tmp_path, {"scenarios": [scenario("ok"), _broken(policy__expires_on="soon")]})
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("scenario bad-1: policy.expires_on:")


def test_scenarios_sharing_a_policy_term_get_distinct_workflow_ids() -> None:
    from starter.simulate import _workflow_ids

    parsed = parse_scenarios(
        {
            "scenarios": [
                scenario("a", number="P-1"),
                scenario("b", number="P-1"),
                scenario("c", number="P-2"),
            ]
        },
        NOW,
    )
    assert _workflow_ids(parsed) == {
        "a": "renewal-P-1-20270420--a",
        "b": "renewal-P-1-20270420--b",
        "c": "renewal-P-2-20270420",
    }
