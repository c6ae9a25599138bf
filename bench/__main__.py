"""`python -m bench`: bare Temporal vs our journeys, on dev servers this run starts itself.

Defaults fit a 2-core machine in under 15 minutes; see docs/performance.md for every flag.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.infra import ROOT, dev_server, gateway, machine_facts
from bench.phases import baseline, burst, codec, memory, simulate
from bench.report import render_markdown, render_table, targets

DEFAULT_OUT = ROOT / "bench" / "results"


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "-n",
        "--journeys",
        type=int,
        default=1000,
        help="simultaneous wake-ups for the baseline and our burst (default 1000)",
    )
    parser.add_argument(
        "--servers",
        default="memory,sqlite",
        help="dev-server modes to run the burst on: memory, sqlite or both (default both)",
    )
    parser.add_argument(
        "--memory-steps",
        default="1000,10000",
        help="sleeping-journey counts for the RSS phase (cumulative; default 1000,10000)",
    )
    parser.add_argument(
        "--full", action="store_true", help="add the 100,000-journey memory step (about 20 more minutes here)"
    )
    parser.add_argument(
        "--simulate",
        type=int,
        default=150,
        help="scenarios for the `renewals simulate` timing, 1,000 projected from it; 0 skips it "
        "(default 150; `--simulate 1000` measures it, ≈ 3 min here)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="record the worker with py-spy during our burst (pip install py-spy)",
    )
    parser.add_argument(
        "--lead",
        type=float,
        default=None,
        help="seconds from intake start to the touchpoint's due moment (default 10 + 5 × the import time)",
    )
    parser.add_argument(
        "--bare-sequential",
        action="store_true",
        help="bare workflows run their 3 activities one after another (default: together, like the journey)",
    )
    parser.add_argument(
        "--worker-variants",
        default="",
        help="experiment: run our worker through bench.variant_worker with these patches (e.g. pool1)",
    )
    parser.add_argument("--workers", type=int, default=1, help="worker processes for our burst (default 1)")
    parser.add_argument(
        "--spread-minutes",
        type=int,
        default=2,
        help="also run our burst with the window's morning spread over this many minutes, on the first "
        "server mode (RENEWALS_WINDOW_SPREAD_MINUTES; 0 skips it; default 2)",
    )
    parser.add_argument(
        "--codec",
        type=int,
        default=0,
        metavar="N",
        help="also measure the payload codec's cost: our burst of N journeys with and without it (fresh "
        "in-memory servers) and `renewals simulate` with and without it (default 0: off; "
        "`--codec 200` ≈ 2 min here)",
    )
    parser.add_argument(
        "--codec-scenarios",
        type=int,
        default=100,
        help="scenarios for the codec's simulate comparison (default 100; 0: bursts only)",
    )
    parser.add_argument(
        "--skip",
        default="",
        help="phases to skip: baseline, ours, memory (comma-separated; `--skip baseline,ours,memory "
        "--simulate 0 --codec 200` runs the codec comparison alone)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where results go (bench/results)")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch files (default: a temp dir)")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="renewals-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    result: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_facts(),
        "n": args.journeys,
        "workdir": str(workdir),
        "bursts": {},
    }
    print(f"bench: N={args.journeys}, scratch {workdir}", flush=True)
    modes = [m.strip() for m in args.servers.split(",") if m.strip()]
    for mode in modes if not {"baseline", "ours"} <= skip else []:
        on_server: dict[str, Any] = {}
        async with dev_server(mode, workdir) as server:
            if "baseline" not in skip:
                print(f"[{mode}] baseline: {args.journeys} bare workflows …", flush=True)
                on_server["baseline"] = await baseline.measure(
                    server, args.journeys, workdir, not args.bare_sequential
                )
                print(f"  {json.dumps(_brief(on_server['baseline']))}", flush=True)
            if "ours" not in skip:
                print(f"[{mode}] ours: import, `renewals start`, burst through the gateway …", flush=True)
                on_server["ours"] = await _ours(args, server, workdir, mode, spread=0)
                print(f"  {json.dumps(_brief(on_server['ours']))}", flush=True)
                if args.spread_minutes and not result["bursts"]:
                    print(f"[{mode}] ours, sends spread over {args.spread_minutes} min …", flush=True)
                    on_server["ours_spread"] = await _ours(args, server, workdir, mode, args.spread_minutes)
                    print(f"  {json.dumps(_brief(on_server['ours_spread']))}", flush=True)
        result["bursts"][mode] = on_server
    if "memory" not in skip:
        steps = [int(s) for s in args.memory_steps.split(",") if s.strip()]
        if args.full and 100_000 not in steps:
            steps.append(100_000)
        print(f"[memory] worker RSS with {steps} sleeping journeys (in-memory server) …", flush=True)
        async with dev_server("memory", workdir) as server:
            result["memory"] = await memory.measure(server, sorted(steps), workdir)
    if args.simulate:
        print(f"[simulate] 1 and {args.simulate} scenarios …", flush=True)
        result["simulate"] = simulate.measure(workdir, args.simulate)
    if args.codec:
        result["codec"] = await codec.measure(
            args.codec, args.codec_scenarios, workdir, args.worker_variants, args.workers, args.lead
        )
    result["targets"] = targets(result)
    result["wall_seconds"] = round(time.monotonic() - began, 1)
    return result


async def _ours(
    args: argparse.Namespace, server: Any, workdir: Path, mode: str, spread: int
) -> dict[str, Any]:
    """Our burst on `server`, through a gateway of its own; profiled only when asked, in memory, unspread."""
    with gateway(workdir) as gw:
        return await burst.measure(
            server,
            args.journeys,
            workdir,
            gw,
            args.profile and mode == "memory" and not spread,
            args.lead,
            args.worker_variants,
            args.workers,
            spread_minutes=spread,
        )


def _brief(part: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "start_rate_per_s",
        "intake_rate_per_s",
        "drain_workflows_per_s",
        "drain_journeys_per_s",
        "send_lateness_s",
        "completion_lateness_s",
    )
    return {k: part[k] for k in keys if k in part}


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    # A `kill` stops the run like Ctrl-C: the dev servers, gateway and workers it started go with it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    result = asyncio.run(run(args))
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (args.out / "latest.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    (args.out / "latest.md").write_text(render_markdown(result))
    (args.out / f"run-{stamp}.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    render_table(result)
    print(f"results: {args.out / 'latest.json'}, {args.out / 'latest.md'} ({result['wall_seconds']} s)")
    bursts = [b.get(part, {}) for b in result["bursts"].values() for part in ("ours", "ours_spread")]
    bursts += list(result.get("codec", {}).get("burst", {}).values())
    correct = all(b.get("correctness", {}).get("exactly_once", True) for b in bursts)
    return 0 if correct else 1


if __name__ == "__main__":
    sys.exit(main())
