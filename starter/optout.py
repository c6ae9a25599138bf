"""`renewals optout add|remove|list|import`: the do-not-contact list by hand.

Every change names who (`--by`) and why (`--reason`); the list records when. Addresses are shown
masked, never in clear (the list keeps only keyed hashes). Exit codes: 0 done, 1 an import with
rejected lines (each named by its line), 2 a refusal (an unusable address, not listed, an erasure's
entry) or an unreadable file.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING

from starter import ops
from starter.commands import Commands
from starter.ops import err, out

if TYPE_CHECKING:
    from renewals.db.database import Database
    from renewals.optout_register import Entry, Register
    from renewals.settings import Settings
    from starter.ops import OpsHandler

RegisterHandler = Callable[[argparse.Namespace, "Register"], Awaitable[int]]
ADDRESS_HELP = "a phone (+79161234567), an e-mail, or a VK user id written vk:123456789"


def register(commands: Commands) -> None:
    optout = commands.add_parser(
        "optout", help="the do-not-contact list: add, remove, list, import (see `renewals optout -h`)"
    )
    sub = optout.add_subparsers(dest="optout_command", required=True)
    add = sub.add_parser("add", help="list an address: no journey contacts it again")
    add.add_argument("address", help=ADDRESS_HELP)
    _who_why(add)
    ops.ops_command(add, _on_register(_add))
    remove = sub.add_parser("remove", help="take an address off the list (the change is kept)")
    remove.add_argument("address", help=ADDRESS_HELP)
    _who_why(remove)
    ops.ops_command(remove, _on_register(_remove))
    listing = sub.add_parser("list", help="the list (masked), or its changes")
    listing.add_argument("--address", help="only this address's entry (and changes)")
    listing.add_argument("--changes", action="store_true", help="every addition and removal instead")
    listing.add_argument("--limit", type=int, default=200)
    ops.ops_command(listing, _on_register(_list))
    imported = sub.add_parser(
        "import", help="list every address of a file: one a line, `address[,reason]`, # comments"
    )
    imported.add_argument("file", type=Path)
    imported.add_argument("--reason", required=True, help="for the lines that give none")
    imported.add_argument("--by", required=True, help="who asks for it")
    ops.ops_command(imported, _on_register(_import))


def _who_why(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reason", required=True, help="why")
    parser.add_argument("--by", required=True, help="who asks for it (your name)")


def _on_register(handler: RegisterHandler) -> OpsHandler:
    """The handler, on the register; a refusal is one line on stderr, exit 2."""

    @wraps(handler)
    async def refusing(args: argparse.Namespace, settings: Settings, db: Database) -> int:
        from renewals.delivery import OptOuts, optout_hash_key
        from renewals.optout_register import Register, RegisterRefused

        try:
            return await handler(args, Register(db, OptOuts(db, hash_key=optout_hash_key(settings))))
        except RegisterRefused as refusal:
            err.print(f"refused: {refusal.reason}", markup=False, soft_wrap=True)
            return 2

    return refusing


async def _add(args: argparse.Namespace, register: Register) -> int:
    result = await register.add(args.address, args.reason, args.by, "cli")
    entry = result.entry
    if result.added:
        out.print(f"listed {entry.masked} ({entry.kind}) by {entry.by}: {entry.reason}", markup=False)
    else:
        out.print(
            f"{entry.masked or entry.hash} was already listed since {entry.listed_at:%Y-%m-%d %H:%M} UTC "
            f"({entry.source}, by {entry.by or '-'}: {entry.reason}); that entry stays",
            markup=False,
        )
    return 0


async def _remove(args: argparse.Namespace, register: Register) -> int:
    entry = await register.remove(args.address, args.reason, args.by, "cli")
    out.print(
        f"removed {entry.masked or entry.hash} from the list (by {args.by}: {args.reason})", markup=False
    )
    return 0


async def _list(args: argparse.Namespace, register: Register) -> int:
    from rich.table import Table

    if args.changes or args.address:
        changes = await register.changes(args.address, args.limit)
        grid = Table(title="do-not-contact list: changes")
        for column in ("at (UTC)", "action", "hash", "address", "source", "by", "reason"):
            grid.add_column(column)
        for c in changes:
            at = f"{c.at:%Y-%m-%d %H:%M}"
            grid.add_row(at, c.action, c.hash, c.masked or "", c.source, c.by or "", c.reason)
        if args.address:
            found = await register.find(args.address)
            out.print(_state(found), markup=False)
        out.print(grid)
        return 0
    entries = await register.entries(args.limit)
    grid = Table(title="do-not-contact list (addresses masked; the list keeps keyed hashes)")
    for column in ("listed (UTC)", "hash", "kind", "address", "source", "by", "reason"):
        grid.add_column(column)
    for e in entries:
        grid.add_row(
            f"{e.listed_at:%Y-%m-%d %H:%M}",
            e.hash,
            e.kind or "",
            e.masked or "",
            e.source or "",
            e.by or "",
            e.reason,
        )
    out.print(grid)
    out.print(
        f"{len(entries)} entries" + (f" (the newest {args.limit})" if len(entries) == args.limit else "")
    )
    return 0


def _state(entry: Entry | None) -> str:
    if entry is None:
        return "not listed"
    since = f"{entry.listed_at:%Y-%m-%d %H:%M} UTC"
    return f"listed since {since} ({entry.source}, by {entry.by or '-'}: {entry.reason})"


async def _import(args: argparse.Namespace, register: Register) -> int:
    from renewals.optout_register import import_lines

    path: Path = args.file
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        err.print(f"refused: {path} is not UTF-8 text", markup=False, soft_wrap=True)
        return 2
    except OSError as error:
        err.print(f"refused: cannot read {path}: {error.strerror}", markup=False, soft_wrap=True)
        return 2
    result = await register.import_(import_lines(text), args.reason, args.by, "import")
    for problem in result.rejected:
        err.print(f"{path}:{problem.line}: {problem.problem}", markup=False, soft_wrap=True)
    out.print(
        f"{result.added} listed, {result.already} already listed, {len(result.rejected)} rejected",
        markup=False,
    )
    return 1 if result.rejected else 0
