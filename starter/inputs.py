"""What the commands that read a JSON document share: reading it, naming the first problem in one
line, and — for `renewals simulate` and `renewals sla simulate` — the whole read → validate → run →
print JSON sequence (exit 0; 2 on unusable input, with the one line on stderr)."""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

T = TypeVar("T")


class InputError(ValueError):
    """Unusable input: one line naming the item and the field."""


def read_json(path: str | Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise InputError(f"input: cannot read {path}: {error}") from None


def field_path(loc: tuple[int | str, ...], root: str = "(root)") -> str:
    """pydantic's location as `events[1].at`; `root` for the object itself."""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".") or root


def first_error(error: ValidationError, root: str = "(root)") -> str:
    """The first of pydantic's errors as `field: message`."""
    first = error.errors()[0]
    return f"{field_path(first['loc'], root)}: {first['msg']}"


async def simulate_command(
    path: str,
    parse: Callable[[Any, datetime], T],
    run: Callable[[T], Awaitable[list[dict[str, Any]]]],
) -> int:
    """Read the document at `path`, validate it (`parse` raises InputError), run it, print
    `{"results": [...]}` as indented JSON on stdout."""
    try:
        parsed = parse(read_json(path), datetime.now(UTC))
    except InputError as error:
        print(str(error), file=sys.stderr)
        return 2
    results = await run(parsed)
    json.dump({"results": results}, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")
    return 0
