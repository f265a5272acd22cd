"""DrainLoop: the background loops of the inbox and outbox workers, woken on demand and polled otherwise."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 3.0


class DrainLoop:
    """Runs `drain()` whenever woken, and every `poll_seconds` anyway; keeps strong references to its tasks; on stop
    lets a drain under way finish (bounded by `STOP_GRACE_SECONDS`), then cancels and awaits them."""

    def __init__(self, name: str, drain: Callable[[], Awaitable[int]], poll_seconds: float) -> None:
        self.name = name
        self._drain = drain
        self._poll_seconds = poll_seconds
        self._wakeup = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()
        self._stopping = False

    def wake(self) -> None:
        self._wakeup.set()

    def start(self, count: int = 1) -> None:
        for i in range(count):
            task = asyncio.create_task(self._run(), name=f"{self.name}-{i}")
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def stop(self) -> None:
        # A drain cancelled inside its transaction leaves SQLAlchemy closing the connection from a task of its own
        # that nobody awaits; when the loop ends first, SQLite keeps that connection's write lock. So a drain under
        # way may finish first; only one that overruns the grace is cancelled.
        self._stopping = True
        self._wakeup.set()
        tasks = list(self.tasks)
        if not tasks:
            return
        _, overrun = await asyncio.wait(tasks, timeout=STOP_GRACE_SECONDS)
        for task in overrun:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self) -> None:
        while not self._stopping:
            self._wakeup.clear()
            try:
                await self._drain()
            except Exception:  # the database went away, say: keep the loop alive and try again at the next poll
                log.exception("%s: drain failed", self.name)
            try:
                async with asyncio.timeout(self._poll_seconds):
                    await self._wakeup.wait()
            except TimeoutError:
                pass


def backoff_seconds(attempts: int, base: float, cap: float, *, jitter: bool = False) -> float:
    """Delay before try attempts+1: base * 2^(attempts-1), capped; with `jitter`, "equal jitter" (half fixed,
    half random, never 0) so retries of many rows spread out."""
    delay = float(min(cap, base * 2.0 ** max(attempts - 1, 0)))
    return delay / 2 + random.uniform(0, delay / 2) if jitter else delay
