"""`python -m bench`: bare Temporal vs our journeys, on dev servers this run starts itself.

Defaults take 21–31 minutes on a 2-core machine (1,283 and 1,853 s on 2026-12-04), over the 15 minutes
issue 14 asks for: the 10,000-journey spread, sized at the operators' 0.5 of the slowest drain, is
16–25 minutes alone there (the run's targets show its window and lead). `--spread-n 0` leaves it out
(≈ 5 minutes). See docs/performance.md for every flag.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
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


# The share of the measured burst drain an operator's spread may use (docs/performance.md, "Sizing a
# deployment"). The bench sizes its spread by the same rule: at 0.8 the spread's cold wake-ups (journeys
# outside the sticky cache replay) queued in five default runs of six (p99 23.8–457 s; once 4.4 s), so a
# p99 measured there held only while the machine happened to keep up.
OPERATOR_SPREAD_LOAD = 0.5


# Where results and scratch files go: what a run measures does not depend on them.
_PLACES = ("out", "workdir")


def at_defaults(args: argparse.Namespace) -> bool:
    """Whether `args` measure what `python -m bench` with no flags does (the 15-minute target's run)."""
    given, default = vars(args), vars(parse([]))
    return all(given[key] == value for key, value in default.items() if key not in _PLACES)


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
        default="memory",
        help="dev-server modes to run the burst on: memory, sqlite or both (default memory)",
    )
    parser.add_argument(
        "--memory-steps",
        default="",
        help="sleeping-journey counts for the RSS phase (cumulative; default none: the bursts record the "
        "RSS with 1,000 and 10,000 journeys asleep; --full: 1000,10000,100000,125000)",
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help="add the RSS phase up to 125,000 sleeping journeys and a dev-server restart under them "
        "(--memory-steps 1000,10000,100000,125000 --restart; 53 min on 2 cores on 2026-12-04)",
    )
    parser.add_argument(
        "--restart",
        action="store_true",
        help="the RSS phase runs on a persistent (SQLite file) dev server and ends with its restart: every "
        "journey still running and asleep, a sample answering its status query",
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
        help="seconds from intake start to the touchpoint's due moment (default 10 + 5 × the import time "
        "+ N / 50, time for N journeys' first workflow tasks)",
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
    parser.add_argument(
        "--workers",
        default="1,2",
        help="worker processes for our burst: each count > 1 is run again on the last --app-db, and the "
        "scaling factor reported (default 1,2)",
    )
    parser.add_argument(
        "--app-db",
        default="sqlite,postgresql",
        help="application databases for our burst: sqlite (a file), postgresql (a fresh database on the "
        "local server, BENCH_POSTGRES_URL) or both (default both)",
    )
    parser.add_argument(
        "--spread-n",
        type=int,
        default=10_000,
        help="journeys due at one window opening for the spread phase (default 10000; 0 skips it)",
    )
    parser.add_argument(
        "--spread-minutes",
        type=int,
        default=None,
        help="the spread phase's window spread (default: sized from the slowest one-worker burst's drain, "
        "spread-n / (spread-load × drain), the rule docs/performance.md gives operators)",
    )
    parser.add_argument(
        "--spread-load",
        type=float,
        default=OPERATOR_SPREAD_LOAD,
        help="the share of the measured drain rate the sized spread may use (default "
        f"{OPERATOR_SPREAD_LOAD}, the operators' rule)",
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
        "at_defaults": at_defaults(args),
    }
    print(f"bench: N={args.journeys}, scratch {workdir}", flush=True)
    modes = [m.strip() for m in args.servers.split(",") if m.strip()]
    app_dbs = [d.strip() for d in args.app_db.split(",") if d.strip()]
    worker_counts = [int(w) for w in args.workers.split(",") if w.strip()]
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
                for app_db in app_dbs:
                    for workers in [1] + [w for w in worker_counts if w > 1 and app_db == app_dbs[-1]]:
                        name = burst_name(app_db, workers, app_dbs)
                        print(f"[{mode}] {name}: import, `renewals start`, burst …", flush=True)
                        on_server[name] = await _ours(
                            args, server, workdir, mode, app_db=app_db, workers=workers
                        )
                        print(f"  {json.dumps(_brief(on_server[name]))}", flush=True)
                drain, first_tasks = slowest(on_server, "drain_journeys_per_s", "first_tasks_per_s")
                minutes = args.spread_minutes or sized_spread_minutes(args.spread_n, drain, args.spread_load)
                if args.spread_n and not result["bursts"] and minutes is None:
                    result["spread_skipped"] = NO_DRAIN_TO_SIZE
                    print(f"[{mode}] spread skipped: {NO_DRAIN_TO_SIZE}", flush=True)
                elif args.spread_n and not result["bursts"] and minutes is not None:
                    print(f"[{mode}] ours, {args.spread_n} due, spread over {minutes} min …", flush=True)
                    on_server["ours_spread"] = await _ours(
                        args,
                        server,
                        workdir,
                        mode,
                        spread=minutes,
                        n=args.spread_n,
                        app_db=app_dbs[0],
                        first_tasks_per_s=first_tasks,
                    )
                    on_server["ours_spread"]["spread_load"] = args.spread_load
                    on_server["ours_spread"]["sized_from_drain_journeys_per_s"] = drain
                    print(f"  {json.dumps(_brief(on_server['ours_spread']))}", flush=True)
        result["bursts"][mode] = on_server
    if args.full:
        args.memory_steps = args.memory_steps or "1000,10000,100000,125000"
        args.restart = True
    if "memory" not in skip and args.memory_steps:
        steps = [int(s) for s in args.memory_steps.split(",") if s.strip()]
        mode = "sqlite" if args.restart else "memory"
        print(f"[memory] worker RSS with {steps} sleeping journeys ({mode} server) …", flush=True)
        async with dev_server(mode, workdir) as server:
            result["memory"] = await memory.measure(server, sorted(steps), workdir, restart=args.restart)
    if args.simulate:
        print(f"[simulate] 1 and {args.simulate} scenarios …", flush=True)
        result["simulate"] = simulate.measure(workdir, args.simulate)
    if args.codec:
        result["codec"] = await codec.measure(
            args.codec, args.codec_scenarios, workdir, args.worker_variants, 1, args.lead
        )
    result["wall_seconds"] = round(time.monotonic() - began, 1)
    result["targets"] = targets(result)
    return result


def burst_name(app_db: str, workers: int, app_dbs: list[str]) -> str:
    """The results key of one of our bursts: `ours` (the first app database, one worker), else
    `ours_<app db>` and `_w<workers>`."""
    name = "ours" if app_db == app_dbs[0] else f"ours_{app_db}"
    return name if workers == 1 else f"{name}_w{workers}"


def slowest(on_server: dict[str, Any], *keys: str) -> tuple[Any, ...]:
    """For each key, the lowest rate of our one-worker bursts on this server (any app database).
    The machine's speed changes between bursts minutes apart: the spread and its lead are sized
    from the slowest rate it showed, not from whichever burst ran first (a figure sized from a
    fast first burst queued 175 journeys at the opening when the machine slowed down)."""
    bursts = [part for name, part in on_server.items() if name.startswith("ours") and "_w" not in name]
    rates = [[part[key] for part in bursts if part.get(key)] for key in keys]
    return tuple(min(found) if found else None for found in rates)


NO_DRAIN_TO_SIZE = "no one-worker burst of ours measured a drain to size it from (give --spread-minutes)"


def sized_spread_minutes(due: int, drain_per_s: float | None, load: float) -> int | None:
    """The smallest spread that keeps the wake-ups below `load` × the measured drain rate: the
    sizing rule an operator applies to RENEWALS_WINDOW_SPREAD_MINUTES (docs/performance.md).
    None when no burst measured a drain (none drained): there is nothing to size from."""
    if not drain_per_s or not due:
        return None
    return math.ceil(due / (load * drain_per_s) / 60)


async def _ours(
    args: argparse.Namespace,
    server: Any,
    workdir: Path,
    mode: str,
    spread: int = 0,
    n: int | None = None,
    app_db: str = "sqlite",
    workers: int = 1,
    first_tasks_per_s: float | None = None,
) -> dict[str, Any]:
    """Our burst on `server`, through a gateway of its own; profiled only when asked, in memory, unspread.
    `first_tasks_per_s`: the rate an earlier burst measured, for this one's lead."""
    with gateway(workdir) as gw:
        return await burst.measure(
            server,
            n or args.journeys,
            workdir,
            gw,
            args.profile and mode == "memory" and not spread and app_db == "sqlite" and workers == 1,
            args.lead,
            args.worker_variants,
            workers,
            spread_minutes=spread,
            app_db=app_db,
            first_tasks_per_s=first_tasks_per_s,
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
    bursts = [part for b in result["bursts"].values() for name, part in b.items() if name.startswith("ours")]
    bursts += list(result.get("codec", {}).get("burst", {}).values())
    correct = all(b.get("correctness", {}).get("exactly_once", True) for b in bursts)
    return 0 if correct else 1


if __name__ == "__main__":
    sys.exit(main())
