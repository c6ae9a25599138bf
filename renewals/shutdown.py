"""Stopping a long-running process by signal, the same way whoever sends it.

Ctrl-C in a terminal and systemd's `KillSignal=SIGINT` (deploy/systemd) send SIGINT; `kill`, `docker
stop` and Kubernetes send SIGTERM. `run_until_stopped` turns either into one cancellation of the
process's main coroutine, so its `finally` blocks stop what it started, in order — the worker
finishes its shutdown and tells Temporal it has gone, `renewals stack` stops the dev server and the
gateway it started — and the process exits 0: for a process that runs until stopped, being stopped
is success (systemd, Kubernetes and a supervisor then see a clean stop, not a crash).

Why not plain `asyncio.run`: it handles SIGINT only. SIGTERM's default kills the process at once,
and a SIGTERM handler that raises KeyboardInterrupt raises it inside the event loop, after which
asyncio's clean-up can wait forever on tasks still shutting down (`renewals stack` did so).

A uvicorn server inside such a process must leave the signals alone (`embedded_server`): uvicorn
installs its own handlers while it serves and, when it stops, re-raises the signal it caught to the
handler it found — for SIGTERM the default, which kills the process in the middle of its shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Coroutine, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import uvicorn

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
STOP_SECONDS = 10  # how long a server gets to finish the requests in hand
log = logging.getLogger(__name__)
T = TypeVar("T")


def run_until_stopped(main: Coroutine[Any, Any, T]) -> T | None:
    """`asyncio.run(main)`, where the first SIGINT or SIGTERM cancels `main`: its result, or None once
    a signal has stopped it. A second signal while it stops is logged, not obeyed: every step of a
    stop here has its own time-out, and cutting one short is what leaves a dev server or a half-shut
    worker behind."""
    return asyncio.run(_cancelled_by_signal(main))


async def _cancelled_by_signal(main: Coroutine[Any, Any, T]) -> T | None:
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(main)
    # The signals that asked for the stop: not `task.cancelling()`, which also counts a time-out's
    # cancellation inside main (asyncio.timeout) and would swallow a real signal arriving meanwhile.
    signalled: list[signal.Signals] = []

    def stop(signum: signal.Signals) -> None:
        if signalled:
            log.warning("%s again: still stopping", signum.name)
            return
        signalled.append(signum)
        log.info("%s: stopping", signum.name)
        task.cancel()

    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop, signum)
    try:
        return await task
    except asyncio.CancelledError:
        if not signalled:
            raise  # not a signal's doing: a failure, which must not exit 0
        return None
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)


async def serve(server: uvicorn.Server) -> None:
    """`server.serve()`, stopped gracefully when cancelled: it stops accepting, finishes the requests
    in hand (up to STOP_SECONDS) and closes its socket — cancelling `serve()` itself would drop them
    and leave the socket listening in this process."""
    serving = asyncio.ensure_future(server.serve())
    try:
        await asyncio.shield(serving)
    finally:
        server.should_exit = True
        await asyncio.wait([serving], timeout=STOP_SECONDS)


def embedded_server(config: uvicorn.Config) -> uvicorn.Server:
    """A uvicorn server for a process that owns its signals (`run_until_stopped`): it stops when told
    (`server.should_exit = True`), never by a signal of its own."""
    import uvicorn

    class Embedded(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return Embedded(config)
