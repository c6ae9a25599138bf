"""The `renewals` command: one argparse tree, built from the command modules.

Each command module has `register(commands)` (starter/serve.py has one per command), which adds its
subparser(s) and sets `handler` (parsed arguments → exit code); REGISTER lists them in help order.
Modules import what a command runs inside its handler, so `renewals -h` and every command start
without loading the rest.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from starter import codec, intake, operator, privacy, reports, serve, setup, simulate, stack, status
from starter.cancel import register as register_cancel
from starter.commands import Commands
from starter.experiments import register as register_experiments
from starter.optout import register as register_optout
from starter.sla import commands as sla

REGISTER: tuple[Callable[[Commands], None], ...] = (
    simulate.register,
    serve.register_worker,
    stack.register,
    setup.register,
    sla.register,
    intake.register,  # import, start, schedule
    status.register,  # status, list
    operator.register,
    reports.register,  # dashboard, funnel
    register_experiments,  # experiments list|report
    serve.register_webhooks,
    serve.register_migrate,  # migrate (G, issue 15: run once before the workers)
    codec.register,  # codec-server
    privacy.register,  # purge, forget
    register_optout,  # optout add|remove|list|import
    register_cancel,  # cancel POLICY
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="renewals", description="Prolongation journeys")
    commands = parser.add_subparsers(dest="command", required=True)
    for register in REGISTER:
        register(commands)
    return parser


def run(argv: list[str]) -> int:
    """`renewals ARGV` (without the program name) → its exit code."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    code: int = args.handler(args)
    return code


def main(argv: list[str] | None = None) -> None:
    sys.exit(run(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
