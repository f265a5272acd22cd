"""The inbox worker: claims stored callbacks and hands them to handlers.dispatch, once each.

Each event is processed in ONE transaction: claim the row (PostgreSQL: FOR UPDATE SKIP LOCKED, so several
server processes share the work; SQLite: bot/db.py's BEGIN IMMEDIATE serialises writers), parse it, dispatch
it and mark it done. The handler's writes, its replies (outbox rows) and "done" commit together, so a crash
anywhere replays the event and never half-applies it. A failing event is retried with backoff (`claimed_until`
holds "not before"), the user is told once that it is taking longer, and after max_attempts it is marked failed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, nullcontext
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

import handlers
from bot.config import InboxSettings
from bot.deps import Deps
from bot.keys import DEPS, INBOX, METRICS, SETTINGS
from bot.loop import DrainLoop
from bot.messages import render
from bot.metrics import Metrics
from bot.wecom.parse import to_event
from models.inbox import InboundEvent
from models.outbox import send_text

log = logging.getLogger(__name__)
# The in-process queue for SQLite's single writer, shared by the callback endpoint and the inbox worker.
WRITE_LOCK = web.AppKey("inbox_write_lock", asyncio.Lock)


def backoff_seconds(attempts: int, settings: InboxSettings) -> float:
    """How long to wait before try number attempts+1: base * 2^(attempts-1), capped."""
    return float(min(settings.backoff_max_seconds, settings.backoff_base_seconds * 2 ** max(attempts - 1, 0)))


def _expects_answer(payload: dict[str, Any]) -> bool:
    """Something a person sent on purpose (not a background event such as LOCATION or enter_agent)."""
    return payload.get("MsgType") != "event" or payload.get("Event") == "template_card_event"


class InboxWorker:
    """`drain()` processes every event due now (by the app's clock); `start(n)` runs n background loops."""

    def __init__(
        self, deps: Deps, settings: InboxSettings, metrics: Metrics, *, name: str | None = None,
        write_lock: asyncio.Lock | None = None,
    ) -> None:
        self.deps = deps
        self.write_lock = write_lock
        self.settings = settings
        self.metrics = metrics
        self.name = (name or f"{socket.gethostname()}:{os.getpid()}")[:64]
        self.loop = DrainLoop(f"inbox-worker-{self.name}", self.drain, settings.poll_seconds)

    def _gate(self, session: AsyncSession) -> AbstractAsyncContextManager[Any]:
        """SQLite has one writer at a time: queue for it in-process (FIFO, shared with the callback endpoint)
        instead of on SQLite's busy timeout, whose sleeps would delay callback acks by hundreds of ms."""
        if self.write_lock is not None and session.get_bind().dialect.name == "sqlite":
            return self.write_lock
        return nullcontext()

    def wake(self) -> None:
        """A callback was stored: process it now instead of at the next poll."""
        self.loop.wake()

    async def drain(self) -> int:
        """Process events until none is due; return how many were handled (done, retried or failed)."""
        handled = 0
        while await self.process_one():
            handled += 1
        return handled

    async def process_one(self) -> bool:
        """Claim and process the oldest due event in one transaction; False when nothing is due."""
        now = self.deps.clock.now()
        claimed: tuple[int, dict[str, Any], int, str] | None = None
        try:
            async with self.deps.sessions() as session, self._gate(session), session.begin():
                stmt = (
                    select(InboundEvent.id, InboundEvent.payload, InboundEvent.attempts, InboundEvent.from_user)
                    .where(
                        InboundEvent.state == "pending",
                        or_(InboundEvent.claimed_until.is_(None), InboundEvent.claimed_until <= now),
                    )
                    .order_by(InboundEvent.received_at, InboundEvent.id)
                    .limit(1)
                    .with_for_update(skip_locked=True)
                )
                row = (await session.execute(stmt)).first()
                if row is None:
                    return False
                event_id, payload, attempts, from_user = row
                claimed = (event_id, payload, attempts, from_user)
                try:
                    async with session.begin_nested():
                        await handlers.dispatch(to_event(payload), self.deps, session)
                except Exception as err:  # any failure: undo the handler's writes, retry later
                    outcome = await self._failed(session, event_id, payload, attempts + 1, from_user, err, now)
                else:
                    outcome = "done"
                    await session.execute(
                        update(InboundEvent)
                        .where(InboundEvent.id == event_id)
                        .values(state="done", processed_at=now, attempts=attempts + 1, claimed_by=self.name,
                                claimed_until=None, last_error=None)
                    )
        except Exception as err:
            if claimed is None:
                raise
            # The commit itself failed (a deferred constraint, the connection lost): count the try, in a new
            # transaction, so the event backs off and eventually fails instead of being retried at every poll.
            event_id, payload, attempts, from_user = claimed
            async with self.deps.sessions() as session, self._gate(session), session.begin():
                outcome = await self._failed(session, event_id, payload, attempts + 1, from_user, err, now)
        self.metrics.events_processed.labels(outcome).inc()
        return True

    async def _failed(
        self, session: AsyncSession, event_id: int, payload: dict[str, Any], attempts: int, from_user: str,
        err: Exception, now: datetime,
    ) -> str:
        error = f"{type(err).__name__}: {err}"[:2000]
        values: dict[str, Any] = {"attempts": attempts, "last_error": error, "claimed_by": self.name}
        if attempts >= self.settings.max_attempts:
            log.error("inbox event %s from %s failed %s times, giving up: %s", event_id, from_user, attempts, error,
                      exc_info=err)
            values.update(state="failed", processed_at=now, claimed_until=None)
            outcome = "failed"
        else:
            delay = backoff_seconds(attempts, self.settings)
            log.warning("inbox event %s from %s failed (try %s), retry in %.0f s: %s", event_id, from_user, attempts,
                        delay, error, exc_info=err)
            values["claimed_until"] = now + timedelta(seconds=delay)
            outcome = "retry"
        await session.execute(update(InboundEvent).where(InboundEvent.id == event_id).values(**values))
        if _expects_answer(payload):
            # Once per event (dedupe_key): the user knows it arrived and need not send it again.
            await send_text(session, from_user, render("system_busy"), now=now, dedupe_key=f"inbox-busy:{event_id}")
        return outcome

    def start(self, workers: int) -> None:
        self.loop.start(workers)

    async def stop(self) -> None:
        await self.loop.stop()


async def inbox_ctx(app: web.Application) -> AsyncIterator[None]:
    """Create the worker under bot.keys.INBOX and run `inbox.workers` loops (0: accept callbacks only)."""
    settings = app[SETTINGS].inbox
    worker = InboxWorker(app[DEPS], settings, app[METRICS], write_lock=app.get(WRITE_LOCK))
    app[INBOX] = worker
    worker.start(settings.workers)
    try:
        yield
    finally:
        await worker.stop()
