"""Phase 4, `renewals simulate` wall time: one 45-day journey, and many of them in one file."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.infra import ROOT


def measure(workdir: Path, scenarios: int, codec: bool = True) -> dict[str, Any]:
    """The run's time for 1 and for `scenarios` copies of the example renewal-centre scenario; the
    difference gives the per-journey time and the start-up, and from them 1,000 journeys' time.
    `codec=False`: the same runs through `bench.nocodec_simulate` (the plain pydantic converter)."""
    base = json.loads((ROOT / "examples" / "scenarios.json").read_text(encoding="utf-8"))["scenarios"]
    template = next((s for s in base if s["policy"].get("renewal_centre")), None)
    if template is None:
        return {}
    results: dict[str, Any] = {}
    for size in (1, scenarios):
        items = []
        for i in range(size):
            s = copy.deepcopy(template)
            s["id"] = f"bench-{i}"
            s["policy"]["number"] = f"SIM-{i:06d}"
            items.append(s)
        path = workdir / f"scenarios-{size}.json"
        path.write_text(json.dumps({"scenarios": items}, ensure_ascii=False), encoding="utf-8")
        results[f"scenarios_{size}"] = _timed(path, size, codec)
    one = results["scenarios_1"]["seconds"]
    many = results[f"scenarios_{scenarios}"]["seconds"]
    results["per_journey_s"] = round((many - one) / max(1, scenarios - 1), 3)
    results["startup_s"] = round(one - results["per_journey_s"], 2)
    results["projected_1000_s"] = round(results["startup_s"] + 1000 * results["per_journey_s"], 1)
    return results


def _timed(path: Path, size: int, codec: bool = True) -> dict[str, Any]:
    command = (
        [str(Path(sys.executable).parent / "renewals"), "simulate", str(path)]
        if codec
        else [sys.executable, "-m", "bench.nocodec_simulate", str(path)]
    )
    t0 = time.monotonic()
    run = subprocess.run(command, cwd=ROOT, capture_output=True, check=False)
    seconds = time.monotonic() - t0
    ok = run.returncode == 0 and len(json.loads(run.stdout or b"{}").get("results", [])) == size
    if not codec:  # every simulating process said it ran without the codec
        ok = ok and b"without the payload codec" in run.stderr
    return {"seconds": round(seconds, 2), "ok": ok, "stderr": run.stderr.decode()[-300:] if not ok else ""}
