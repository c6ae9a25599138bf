"""`renewals simulate` and `renewals sla simulate` give, byte for byte, the JSON recorded in tests/golden/
before the consolidation (issue 10): a refactor that changes what a client receives, or when, fails here.
(Recorded by the code of commit cf1e6ed with its one output line changed to cut `at` to the minute:
the time-skipping server's clock runs on while a workflow task or an activity is processed, so the
seconds differed between two runs. A shift of less than a minute therefore goes unnoticed here; the
journey tests assert exact moments where they matter.)

The renewal files hold (fictional) clients' names, phones and texts, so they are kept sealed with the
test key, as Temporal payloads are (`tests.keys.seal`; `*.json.sealed`); the SLA one holds none.
Re-record only for an intended change of behaviour: run `renewals simulate` on the unsealed input and
seal its output (`python -c "from tests.keys import seal; …"`).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.keys import unseal

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"


@pytest.mark.parametrize(
    ("command", "example", "golden"),
    [
        (["simulate"], "examples/scenarios.json", "simulate_scenarios.json.sealed"),
        # 30 scenarios over every product, the gate, late intake, each robot outcome and event type
        (["simulate"], "tests/golden/scenarios_branches.json.sealed", "simulate_branches.json.sealed"),
        (["sla", "simulate"], "examples/sla_applications.json", "sla_simulate.json"),
    ],
    ids=["renewals simulate", "renewals simulate (branches)", "renewals sla simulate"],
)
def test_simulate_output_is_byte_identical_to_golden(
    command: list[str], example: str, golden: str, tmp_path: Path
) -> None:
    source = ROOT / example
    if source.suffix == ".sealed":
        source = tmp_path / source.stem
        source.write_bytes(unseal((ROOT / example).read_bytes()))
    result = subprocess.run(
        [sys.executable, "-m", "starter.cli", *command, str(source)],
        cwd=ROOT,
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    recorded = (GOLDEN / golden).read_bytes()
    expected = unseal(recorded) if golden.endswith(".sealed") else recorded
    assert result.stdout == expected, "output differs from the golden file: " + golden
