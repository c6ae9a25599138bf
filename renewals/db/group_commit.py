"""Group commit: concurrent short writes of one kind share one transaction.

A burst runs dozens of sends at once, and each send writes its outbox row twice (claim, mark). One
transaction per write costs a BEGIN, a COMMIT and several thread hand-offs through aiosqlite each,
and on SQLite every writer queues for the one write lock. Here the writes that arrive while a
transaction is in flight wait for the next one, and the next one does all of them in a few
statements (`work` gets the whole batch). A lone write still goes at once: nothing waits for a batch
to fill. Measured on the send path in docs/performance.md.

A batch fails or commits as a whole; every caller of a failed batch gets its exception (the writes
are idempotent, so callers retry as they would a failed transaction of their own). A caller that
was cancelled before its batch started is left out of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

Item = TypeVar("Item")
Result = TypeVar("Result")

BatchWork = Callable[[AsyncConnection, Sequence[Item]], Awaitable[Sequence[Result]]]


class GroupCommit(Generic[Item, Result]):
    """`await submit(item)` → its result, written together with whatever else is waiting."""

    def __init__(self, engine: AsyncEngine, work: BatchWork[Item, Result], max_batch: int = 100) -> None:
        self._engine = engine
        self._work = work
        self._max_batch = max_batch
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop (tests): the old one's writer is gone with it
            self._loop, self._waiting, self._writer = loop, [], None
        future: asyncio.Future[Result] = loop.create_future()
        self._waiting.append((item, future))
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._write())
        return await future

    async def _write(self) -> None:
        while self._waiting:
            batch = [(item, f) for item, f in self._waiting[: self._max_batch] if not f.done()]
            del self._waiting[: self._max_batch]
            if not batch:
                continue
            try:
                async with self._engine.begin() as connection:
                    results = await self._work(connection, [item for item, _ in batch])
            except Exception as error:  # the batch's transaction failed: each of its callers sees it
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            except BaseException:  # the writer itself is cancelled (its event loop ends): so are they
                for _, future in batch:
                    future.cancel()
                raise
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
