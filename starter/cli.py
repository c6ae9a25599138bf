"""The `renewals` command."""

from __future__ import annotations

import argparse
import asyncio
import sys

# Day-to-day operations (intake, journeys, operators, reports, webhooks) live in starter/ops.py.
OPS_COMMANDS = (
    "import",
    "start",
    "schedule",
    "status",
    "list",
    "operator",
    "dashboard",
    "funnel",
    "webhooks",
)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["sla"]:
        from starter.sla import sla_main

        sys.exit(sla_main(argv[1:]))
    if argv[:1] and argv[0] in OPS_COMMANDS:
        from starter.ops import ops_main

        sys.exit(ops_main(argv))
    parser = argparse.ArgumentParser(prog="renewals", description="Prolongation journeys")
    commands = parser.add_subparsers(dest="command", required=True)
    simulate = commands.add_parser("simulate", help="run scenarios on the time-skipping server, print JSON")
    simulate.add_argument("scenarios", help="SCENARIOS.json")
    commands.add_parser("worker", help="run a worker against the configured Temporal")
    commands.add_parser("stack", help="dev server + database + sample journeys + worker (Ctrl-C stops)")
    commands.add_parser("setup", help="register the search attributes in the configured namespace")
    commands.add_parser("sla", help="partner issuance SLA: simulate, report, status (see `renewals sla -h`)")
    for name, what in (
        ("import", "import policies, agents and centres from CSV or JSONL"),
        ("start", "start journeys for policies ending within the horizon"),
        ("schedule", "install the daily intake schedule"),
        ("status", "a policy's journey: stage, next touchpoint, timeline"),
        ("list", "journeys by stage, centre, agent"),
        ("operator", "the renewal centre's workbench: tasks, claim, outcome"),
        ("dashboard", "agent renewal rates against the norms (terminal or --html)"),
        ("funnel", "messages, contacts and renewals per channel and touchpoint"),
        ("webhooks", "serve provider and portal callbacks and the operator API"),
    ):
        commands.add_parser(name, help=f"{what} (see `renewals {name} -h`)")
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
