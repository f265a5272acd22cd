"""WriteGate: SQLite's one writer queued in-process, with callback acks and API writes ahead of background work."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager, nullcontext
from typing import Any, Literal


class WriteGate(asyncio.Lock):
    """An asyncio.Lock (FIFO, as before) for foreground writers, plus a back door for background work.

    A foreground writer (a callback ack's group commit, a POS sale) is *urgent* from the moment it queues until
    it holds the lock. Background work (the inbox worker) enters only when nothing is urgent, and checks
    `urgent` between events to end its transaction early, so an ack waits for at most one event, not a batch.
    It waits at most `max_defer_seconds` for a calm moment, then queues like anyone else: under a flood of
    acks the worker slows down but is never starved. On PostgreSQL there is no single writer: the worker only
    yields (`exclusive=False`), so acks get the event loop first."""

    def __init__(self, max_defer_seconds: float = 0.25) -> None:
        super().__init__()
        self.max_defer_seconds = max_defer_seconds
        self._urgent = 0
        self._calm = asyncio.Event()
        self._calm.set()

    @property
    def urgent(self) -> bool:
        """Foreground writers are queued (or a group commit is gathering its batch)."""
        return self._urgent > 0

    async def acquire(self) -> Literal[True]:
        with self.hold_urgent():
            return await super().acquire()

    @contextmanager
    def hold_urgent(self) -> Iterator[None]:
        """Mark foreground work as on its way to the lock (the group commit holds this from the first callback
        of a batch to its commit, so the worker does not start a transaction in the batch's window)."""
        self._urgent += 1
        self._calm.clear()
        try:
            yield
        finally:
            self._urgent -= 1
            if not self._urgent:
                self._calm.set()

    async def wait_calm(self) -> None:
        """Until nothing is urgent, or max_defer_seconds have passed."""
        deadline = time.monotonic() + self.max_defer_seconds
        while self._urgent:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                async with asyncio.timeout(left):
                    await self._calm.wait()
            except TimeoutError:
                return

    @asynccontextmanager
    async def background(self, *, exclusive: bool) -> AsyncIterator[None]:
        """Enter as background work: after a calm moment (bounded), holding the lock if `exclusive`."""
        await self.wait_calm()
        if not exclusive:
            yield
            return
        await super().acquire()  # not urgent: a background holder never counts as an ack in waiting
        try:
            yield
        finally:
            self.release()


def gate(lock: WriteGate | None, *, sqlite: bool, background: bool) -> AbstractAsyncContextManager[Any]:
    """The one rule for every writer in the server. Foreground (a callback ack's commit, a POS sale): on SQLite,
    queue on the gate instead of SQLite's sleeping busy timeout; on PostgreSQL go straight in. Background (the
    inbox, outbox and photo workers): wait for a calm moment (bounded), and on SQLite hold the one writer."""
    if lock is None:
        return nullcontext()
    if background:
        return lock.background(exclusive=sqlite)
    return lock if sqlite else nullcontext()

