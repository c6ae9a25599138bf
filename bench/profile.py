"""Summarise a py-spy `--format raw` recording (collapsed stacks) of the worker: where its Python
time went, by area (workflow sandbox, activities' DB/HTTP/SMTP, converter, logging …) and by leaf.

`python -m bench.profile FILE [--top 25]`
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path
from typing import Any

# Areas of the worker's time, each a regular expression over a stack's frames. Every frame of a stack
# is checked and the stack counted once for each area it touches (inclusive time), so areas overlap.
_AREA_TABLE = r"""
workflow sandbox (import/restrict proxies)                    | workflow_sandbox
workflow code (workflows/renewal.py)                          | workflows/renewal\.py|bench/bare\.py
temporal workflow instance (run activations)                  | temporalio/worker/_workflow_instance
temporal worker (activation handling)                         | temporalio/worker/_workflow\.py
temporal activity worker                                      | temporalio/worker/_activity
payload converter (pydantic/json)                             | temporalio/converter|contrib/pydantic|pydantic
activity: SQLAlchemy + aiosqlite (outbox, opt-outs, pauses)   | sqlalchemy|aiosqlite
activity: HTTP client (httpx/httpcore)                        | httpx|httpcore
activity: SMTP (aiosmtplib + email building)                  | aiosmtplib|/email/|channels/email\.py
phone parsing (phonenumbers)                                  | phonenumbers
logging                                                       | /logging/
protobuf (de)serialisation                                    | google/protobuf|_pb2
asyncio event loop                                            | asyncio/
"""
AREAS: list[tuple[str, re.Pattern[str]]] = [
    (name.strip(), re.compile(pattern.strip()))
    for name, _, pattern in (line.partition(" | ") for line in _AREA_TABLE.strip().splitlines())
]


def parse(path: Path, thread_filter: str = "") -> tuple[Counter[tuple[str, ...]], Counter[str]]:
    stacks: Counter[tuple[str, ...]] = Counter()
    threads: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        thread = next((f for f in frames if f.startswith("thread ")), "?")
        if thread_filter not in thread:
            continue
        frames = [f for f in frames if not f.startswith(("thread ", "process "))]
        stacks[tuple(frames)] += int(count)
        threads[thread] += int(count)
    return stacks, threads


def summary(path: Path, top: int = 25, thread: str = "") -> dict[str, Any]:
    """`thread`: only stacks of threads whose name contains it (e.g. "MainThread": the event loop)."""
    stacks, threads = parse(path, thread)
    total = sum(stacks.values()) or 1
    areas: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    for frames, n in stacks.items():
        joined = ";".join(frames)
        for name, pattern in AREAS:
            if pattern.search(joined):
                areas[name] += n
        if frames:
            leaves[frames[-1]] += n
        for frame in frames:
            if re.search(r"\((activities|renewals|workflows)/", frame):
                ours[frame] += n

    def pct(n: int) -> float:
        return round(100 * n / total, 1)

    return {
        "samples": total,
        "threads": {t: pct(n) for t, n in threads.most_common(6)},
        "areas_inclusive_pct": {a: pct(n) for a, n in areas.most_common()},
        "top_leaf_frames_pct": {f: pct(n) for f, n in leaves.most_common(top)},
        "our_frames_inclusive_pct": {f: pct(n) for f, n in ours.most_common(top)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("file", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--thread", default="", help="only threads whose name contains this")
    args = parser.parse_args()
    result = summary(args.file, args.top, args.thread)
    print(f"{result['samples']} samples (non-idle Python stacks)")
    for section in ("threads", "areas_inclusive_pct", "top_leaf_frames_pct", "our_frames_inclusive_pct"):
        print(f"\n{section}:")
        for name, value in result[section].items():
            print(f"  {value:5.1f}%  {name}")


if __name__ == "__main__":
    main()
