"""The inbox worker: claims stored callbacks and hands them to handlers.dispatch, once each.

A transaction claims up to CLAIM_BATCH due rows (PostgreSQL: FOR UPDATE SKIP LOCKED, so several server
processes share the work; SQLite: bot/db.py's BEGIN IMMEDIATE serialises writers) and processes them in order,
each in its own savepoint: parse, dispatch, mark done. An event's writes, its replies (outbox rows) and its
"done" commit together, so a crash anywhere replays it and never half-applies it. The worker is background
work on bot.write_gate.WriteGate: it starts a transaction when no callback ack is waiting, and commits early
(after the event in hand) as soon as one is. A failing event is retried with backoff (`claimed_until`
holds "not before"), the user is told once that it is taking longer, and after max_attempts it is marked failed.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from aiohttp import web
from sqlalchemy import Select, Text, bindparam, cast, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

import handlers
from bot.config import InboxSettings
from bot.db import Executemany
from bot.deps import Deps
from bot.events import Event, OtherEvent
from bot.keys import DEPS, INBOX, METRICS, SETTINGS, WRITE_LOCK
from bot.messages import render
from bot.metrics import Metrics
from bot.queues.loop import DrainLoop, backoff_seconds
from bot.wecom.parse import to_event
from bot.write_gate import WriteGate, gate
from models.base import UTCDateTime
from models.inbox import InboundEvent
from models.outbox import send_text

log = logging.getLogger(__name__)
# SQLite's single writer, queued in-process: shared by the callback endpoint, the POS API and the inbox worker.
CLAIM_BATCH = 32  # events claimed per transaction; the transaction ends sooner when an ack is waiting


_INBOX = InboundEvent.metadata.tables[InboundEvent.__tablename__]
_MARK_DONE = Executemany(
    update(_INBOX).where(_INBOX.c.id == bindparam("_id")).values(
        state="done", processed_at=bindparam("_now", type_=UTCDateTime()), attempts=bindparam("_attempts"),
        claimed_by=bindparam("_by"), claimed_until=None, last_error=None,
    )
)


class _Claimed(NamedTuple):
    id: int
    payload: str  # the stored JSON as text: decoded per event, so one undecodable row fails alone
    attempts: int
    from_user: str
    msg_type: str
    event: str | None


def _event_of(row: _Claimed, now: datetime) -> Event:
    """The row's typed event; an unreadable payload as an OtherEvent of its stored type."""
    try:
        return to_event(json.loads(row.payload))
    except Exception:  # whatever is wrong with it was logged as the failure being recorded
        return OtherEvent(from_user=row.from_user, create_time=now, agent_id=None, msg_type=row.msg_type,
                          event=row.event)


def _claim(now: datetime, limit: int) -> Select[int, str, int, str, str, str | None]:
    return (
        select(InboundEvent.id, cast(InboundEvent.payload, Text), InboundEvent.attempts, InboundEvent.from_user,
               InboundEvent.msg_type, InboundEvent.event)
        .where(
            InboundEvent.state == "pending",
            or_(InboundEvent.claimed_until.is_(None), InboundEvent.claimed_until <= now),
        )
        .order_by(InboundEvent.received_at, InboundEvent.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


class InboxWorker:
    """`drain()` processes every event due now (by the app's clock); `start(n)` runs n background loops."""

    def __init__(
        self, deps: Deps, settings: InboxSettings, metrics: Metrics, *, name: str | None = None,
        write_lock: WriteGate | None = None,
    ) -> None:
        self.deps = deps
        self.write_lock = write_lock
        self.settings = settings
        self.metrics = metrics
        self.name = (name or f"{socket.gethostname()}:{os.getpid()}")[:64]
        self.loop = DrainLoop(f"inbox-worker-{self.name}", self.drain, settings.poll_seconds)
        self._solo = 0  # after a failed commit of several events: take them one per transaction to find the culprit

    def _gate(self, session: AsyncSession) -> AbstractAsyncContextManager[Any]:
        """Background work behind callback acks: on SQLite, wait for a calm moment and hold the one writer (in
        process, instead of SQLite's busy timeout, whose sleeps would delay acks by up to 100 ms each); on
        PostgreSQL only let the acks waiting right now go first."""
        return gate(self.write_lock, sqlite=session.get_bind().dialect.name == "sqlite", background=True)

    def _acks_waiting(self) -> bool:
        return self.write_lock is not None and self.write_lock.urgent

    def wake(self) -> None:
        """A callback was stored: process it now instead of at the next poll."""
        self.loop.wake()

    async def drain(self) -> int:
        """Process events until none is due; return how many were handled (done, retried or failed)."""
        handled = 0
        while True:
            n = await self.process_batch()
            if n is None:
                return handled
            handled += n

    async def process_one(self) -> bool:
        """Claim and process the oldest due event in one transaction; False when nothing is due."""
        return await self.process_batch(1) is not None

    async def process_batch(self, limit: int = CLAIM_BATCH) -> int | None:
        """Claim up to `limit` due events and process them in ONE transaction, each in its own savepoint with its
        inbox state, so a crash replays them and never half-applies one. The transaction commits early when a
        callback ack is waiting. Returns how many were handled, None when nothing was due."""
        if self._solo:
            self._solo -= 1
            limit = 1
        now = self.deps.clock.now()
        claimed: list[_Claimed] = []
        outcomes: list[str] = []
        try:
            async with self.deps.sessions() as session, self._gate(session), session.begin():
                rows = [_Claimed._make(row) for row in await session.execute(_claim(now, limit))]
                if not rows:
                    return None
                done: list[dict[str, Any]] = []
                for row in rows:
                    if claimed and self._acks_waiting():
                        break  # commit what is done; the rest stays pending for the next transaction
                    claimed.append(row)
                    outcome = await self._process(session, row, now)
                    outcomes.append(outcome)
                    if outcome == "done":
                        done.append({"_id": row.id, "_attempts": row.attempts + 1, "_now": now, "_by": self.name})
                await _MARK_DONE.run(await session.connection(), done)  # all in one executemany, same transaction
        except Exception as err:
            if not claimed:
                raise
            if len(claimed) > 1:
                log.warning("inbox: committing %s events failed, retrying them one by one: %s", len(claimed),
                            f"{type(err).__name__}: {err}"[:500])
                self._solo = len(claimed)
                return 0
            # The commit itself failed (a deferred constraint, the connection lost): count the try, in a new
            # transaction, so the event backs off and eventually fails instead of being retried at every poll.
            async with self.deps.sessions() as session, self._gate(session), session.begin():
                outcomes = [await self._failed(session, claimed[0], claimed[0].attempts + 1, err, now)]
        for outcome in outcomes:
            self.metrics.events_processed.labels(outcome).inc()
        return len(outcomes)

    async def _process(self, session: AsyncSession, row: _Claimed, now: datetime) -> str:
        """Dispatch one event inside a savepoint and record its state; the outcome for the metrics."""
        try:
            payload = json.loads(row.payload)
        except (ValueError, RecursionError) as err:  # stored but unreadable: retrying cannot help
            return await self._failed(session, row, self.settings.max_attempts, err, now)
        try:
            async with session.begin_nested():
                await handlers.dispatch(to_event(payload), self.deps, session)
        except Exception as err:  # any failure: undo the handler's writes, retry later
            return await self._failed(session, row, row.attempts + 1, err, now)
        return "done"  # marked with the others of its transaction, by _MARK_DONE

    async def _failed(self, session: AsyncSession, row: _Claimed, attempts: int, err: BaseException,
                      now: datetime) -> str:
        event_id, from_user = row.id, row.from_user
        error = f"{type(err).__name__}: {err}"[:2000]
        values: dict[str, Any] = {"attempts": attempts, "last_error": error, "claimed_by": self.name}
        if attempts >= self.settings.max_attempts:
            log.error("inbox event %s from %s failed %s times, giving up: %s", event_id, from_user, attempts, error,
                      exc_info=err)
            values.update(state="failed", processed_at=now, claimed_until=None)
            outcome = "failed"
        else:
            delay = backoff_seconds(attempts, self.settings.backoff_base_seconds, self.settings.backoff_max_seconds)
            log.warning("inbox event %s from %s failed (try %s), retry in %.0f s: %s", event_id, from_user, attempts,
                        delay, error, exc_info=err)
            values["claimed_until"] = now + timedelta(seconds=delay)
            outcome = "retry"
        await session.execute(update(InboundEvent).where(InboundEvent.id == event_id).values(**values))
        if handlers.expects_answer(_event_of(row, now)):
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
