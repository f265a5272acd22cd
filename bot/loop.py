"""DrainLoop: the background loops of the inbox and outbox workers, woken on demand and polled otherwise."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class DrainLoop:
    """Runs `drain()` whenever woken, and every `poll_seconds` anyway; keeps strong references to its tasks and
    cancels and awaits them on stop."""

    def __init__(self, name: str, drain: Callable[[], Awaitable[int]], poll_seconds: float) -> None:
        self.name = name
        self._drain = drain
        self._poll_seconds = poll_seconds
        self._wakeup = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        self._wakeup.set()

    def start(self, count: int = 1) -> None:
        for i in range(count):
            task = asyncio.create_task(self._run(), name=f"{self.name}-{i}")
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def stop(self) -> None:
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self) -> None:
        while True:
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
