"""`renewals operator tasks|claim|outcome`: the renewal centre's workbench from the terminal."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import wraps
from typing import TYPE_CHECKING

from renewals.journey_api import OperatorOutcome
from starter import ops
from starter.commands import Commands
from starter.ops import err, out

if TYPE_CHECKING:
    from renewals.db.database import Database
    from renewals.operators.workbench import Workbench
    from renewals.settings import Settings
    from starter.ops import OpsHandler

WorkbenchHandler = Callable[[argparse.Namespace, "Workbench"], Awaitable[int]]


def register(commands: Commands) -> None:
    operator = commands.add_parser(
        "operator", help="the renewal centre's workbench: tasks, claim, outcome (see `renewals operator -h`)"
    )
    operator_commands = operator.add_subparsers(dest="operator_command", required=True)
    tasks = operator_commands.add_parser("tasks", help="a centre's open tasks")
    tasks.add_argument("--centre", required=True)
    tasks.add_argument("--all", action="store_true", help="include closed tasks")
    tasks.add_argument(
        "--due", action="store_true", help="only tasks due now (call backs wait for their time)"
    )
    ops.ops_command(tasks, _on_workbench(_tasks))
    claim = operator_commands.add_parser("claim", help="claim a task")
    claim.add_argument("task", help="the task id")
    claim.add_argument("--operator", required=True)
    ops.ops_command(claim, _on_workbench(_claim))
    outcome = operator_commands.add_parser("outcome", help="record a task's outcome")
    outcome.add_argument("task", help="the task id")
    outcome.add_argument("outcome", choices=[o.value for o in OperatorOutcome])
    outcome.add_argument("--note")
    outcome.add_argument("--callback-at", help="ISO time with offset, e.g. 2027-03-20T15:00+03:00")
    outcome.add_argument("--operator", help="required: who records it (the claimer, if the task is claimed)")
    ops.ops_command(outcome, _on_workbench(_outcome))


def _on_workbench(handler: WorkbenchHandler) -> OpsHandler:
    """The handler, on the workbench; a refusal (or an unusable value) is one line on stderr, exit 2."""

    @wraps(handler)
    async def refusing(args: argparse.Namespace, settings: Settings, db: Database) -> int:
        from renewals.operators.workbench import Refused, Workbench

        workbench = Workbench(db, await ops.client(settings))
        try:
            return await handler(args, workbench)
        except Refused as refusal:
            err.print(f"refused: {refusal.reason}", markup=False, soft_wrap=True)
            return 2
        except ValueError as error:
            err.print(f"refused: {error}", markup=False, soft_wrap=True)
            return 2

    return refusing


async def _tasks(args: argparse.Namespace, workbench: Workbench) -> int:
    from rich.table import Table

    due_by = datetime.now(UTC) if args.due else None
    views = await workbench.tasks(args.centre, include_closed=args.all, due_by=due_by)
    grid = Table(title=f"operator tasks · centre {args.centre}")
    for column in ("task", "policy", "agent (keeps the renewal)", "status", "operator", "due", "reason"):
        grid.add_column(column)
    for v in views:
        agent = f"{v.agent_id} {v.agent_name or ''} {v.agent_phone or ''}".strip() if v.agent_id else "?"
        grid.add_row(
            str(v.id),
            v.policy_number,
            agent,
            v.status if not v.outcome else f"{v.status}: {v.outcome}",
            v.operator or "",
            ("call back " if v.callback_at else "") + v.due_at.astimezone(UTC).isoformat(timespec="minutes"),
            v.reason + (f" · {v.note}" if v.note else ""),
        )
    out.print(grid)
    return 0


async def _claim(args: argparse.Namespace, workbench: Workbench) -> int:
    from renewals.operators.workbench import parse_task_id

    view = await workbench.claim(parse_task_id(args.task), args.operator)
    out.print(f"task {view.id} claimed by {view.operator} (agent {view.agent_id} keeps it)")
    return 0


async def _outcome(args: argparse.Namespace, workbench: Workbench) -> int:
    from renewals.operators.workbench import parse_task_id

    task = parse_task_id(args.task)
    callback_at = _parse_moment(args.callback_at) if args.callback_at else None
    result = await workbench.record_outcome(
        task, OperatorOutcome(args.outcome), args.note, callback_at, args.operator
    )
    out.print(f"task {result.task.id}: {args.outcome} — {result.message}; agent {result.task.agent_id} kept")
    return 0


def _parse_moment(raw: str) -> datetime:
    moment = datetime.fromisoformat(raw)
    if moment.tzinfo is None:
        raise ValueError(f"--callback-at {raw!r} needs a UTC offset, e.g. 2027-03-20T15:00+03:00")
    return moment.astimezone(UTC)
