"""`renewals simulate` and `renewals sla simulate` give, byte for byte, the JSON recorded in tests/golden/
before the consolidation (issue 10): a refactor that changes what a client receives, or when, fails here.
(Recorded by the code of commit cf1e6ed with its one output line changed to cut `at` to the minute:
the time-skipping server's clock runs on while a workflow task or an activity is processed, so the
seconds differed between two runs. A shift of less than a minute therefore goes unnoticed here; the
journey tests assert exact moments where they matter.)

Re-record only for an intended change of behaviour:
`renewals simulate examples/scenarios.json > tests/golden/simulate_scenarios.json` (likewise for SLA).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"


@pytest.mark.parametrize(
    ("command", "example", "golden"),
    [
        (["simulate"], "examples/scenarios.json", "simulate_scenarios.json"),
        # 30 scenarios over every product, the gate, late intake, each robot outcome and event type
        (["simulate"], "tests/golden/scenarios_branches.json", "simulate_branches.json"),
        (["sla", "simulate"], "examples/sla_applications.json", "sla_simulate.json"),
    ],
    ids=["renewals simulate", "renewals simulate (branches)", "renewals sla simulate"],
)
def test_simulate_output_is_byte_identical_to_golden(command: list[str], example: str, golden: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "starter.cli", *command, str(ROOT / example)],
        cwd=ROOT,
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    expected = (GOLDEN / golden).read_bytes()
    assert result.stdout == expected, "output differs from the golden file: " + golden
