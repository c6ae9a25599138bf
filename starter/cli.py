"""The `renewals` command."""

from __future__ import annotations

import argparse
import asyncio
import sys


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["sla"]:
        from starter.sla import sla_main

        sys.exit(sla_main(argv[1:]))
    parser = argparse.ArgumentParser(prog="renewals", description="Prolongation journeys")
    commands = parser.add_subparsers(dest="command", required=True)
    simulate = commands.add_parser("simulate", help="run scenarios on the time-skipping server, print JSON")
    simulate.add_argument("scenarios", help="SCENARIOS.json")
    commands.add_parser("worker", help="run a worker against the configured Temporal")
    commands.add_parser("stack", help="dev server + database + sample journeys + worker (Ctrl-C stops)")
    commands.add_parser("setup", help="register the search attributes in the configured namespace")
    commands.add_parser("sla", help="partner issuance SLA: simulate, report, status (see `renewals sla -h`)")
    args = parser.parse_args(argv)

    if args.command == "simulate":
        from starter.simulate import run_cli

        sys.exit(asyncio.run(run_cli(args.scenarios)))
    if args.command == "worker":
        from worker import main as worker_main

        worker_main()
    if args.command == "stack":
        from starter.stack import main as stack_main

        stack_main()
    if args.command == "setup":
        from starter.temporal_setup import main as setup_main

        sys.exit(asyncio.run(setup_main()))


if __name__ == "__main__":
    main()
