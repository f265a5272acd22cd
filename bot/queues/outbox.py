"""The outbox worker: claims due rows, sends them through the WeCom client, records the answer.

Each drain first puts back rows whose lease ran out (a crashed worker). Claiming is one short transaction: one
UPDATE ... RETURNING leases the due rows (state 'sending', claimed_by, claimed_until; picked with FOR UPDATE SKIP
LOCKED on PostgreSQL, while on SQLite bot/db.py's BEGIN IMMEDIATE serialises writers), then the per-recipient
budgets put back what they refuse. Sending happens outside any transaction; the answers are written back in one
transaction per batch (the driver's executemany, see bot.db.Executemany), guarded by claimed_by so a worker that
lost its lease cannot overwrite another's result. A resend after an unknown outcome (a timeout, a crash) is
harmless: app messages carry WeCom's duplicate check with a look-back decided from the table, so neither a
resend is delivered twice nor a different row with the same text swallowed (bot/queues/outbox_dupes.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from aiohttp import web
from sqlalchemy import bindparam, func, select, update

from bot.db import Executemany
from bot.deps import Deps
from bot.errors import WeComAPIError, WeComConnectionError
from bot.keys import DEPS, METRICS, OUTBOX, WECOM
from bot.metrics import Metrics
from bot.queues.loop import DrainLoop, backoff_seconds
from bot.queues.outbox_budgets import Budgets, Claimed, split_stale_card_updates
from bot.queues.outbox_dupes import CODE_USED, Attempt, DuplicateGate, Unprotectable, interval_for
from bot.wecom.client import TOKEN_ERRORS, TRANSIENT_ERRORS, WeComClient, WeComRateLimited
from models.base import UTCDateTime
from models.outbox import OutboundMessage

log = logging.getLogger(__name__)

# Errors about our configuration, not about the message: retried with backoff (the admin may fix the config)
# until max_attempts, instead of failing every queued message at once.
CONFIG_ERRORS = frozenset({40001, 40013, 40056, 48002, 60011, 60020})
RETRYABLE_ERRORS = TRANSIENT_ERRORS | TOKEN_ERRORS | CONFIG_ERRORS


class BadRow(ValueError):
    """A row that can never be sent as it stands (a bug in whoever queued it): failed at once, not retried."""


class Outcome(NamedTuple):
    id: int
    label: str  # sent | retry | rate_limited | failed | dead_letter
    values: dict[str, Any]


class OutboxWorker:
    """`drain()` sends every row due now (by the app's clock); `start()` runs the same as a background loop."""

    def __init__(self, deps: Deps, client: WeComClient, metrics: Metrics, *, name: str | None = None) -> None:
        self.deps = deps
        self.client = client
        self.metrics = metrics
        self.settings = deps.config.outbox
        self.name = (name or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}")[:64]
        self.budgets = Budgets(self.settings)
        self.dupes = DuplicateGate(_TABLE)
        self.loop = DrainLoop(f"outbox-worker-{self.name}", self.drain, self.settings.poll_seconds)

    def wake(self) -> None:
        """Rows were queued: send them now instead of at the next poll."""
        self.loop.wake()

    async def drain(self) -> int:
        """Claim and send batches until nothing is due; return how many rows were attempted.

        Claiming runs ahead of sending: the next batch is claimed as soon as every row of the one before has
        started, all sends share one `concurrency` limit, and answers are recorded in the background, so the
        wire does not idle on database work."""
        attempted = 0
        limit = asyncio.Semaphore(self.settings.concurrency)
        tasks: set[asyncio.Task[None]] = set()
        waiting: set[asyncio.Future[None]] = set()  # one per batch with rows not yet started
        await self.recover_expired_leases()
        try:
            while True:
                # the first claim is small, so the wire starts at once instead of after a full batch is leased
                batch, deferred = await self.claim(self.settings.batch_size if attempted else _FIRST_CLAIM)
                if not batch and not deferred:
                    break
                if batch:
                    attempted += len(batch)
                    started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                    waiting.add(started)
                    tasks.add(asyncio.create_task(self._process(batch, limit, started)))
                while len(waiting) >= _BATCHES_AHEAD or (waiting and not batch):
                    _, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                for task in [t for t in tasks if t.done()]:
                    tasks.discard(task)
                    task.result()  # a batch that could not record its answers stops the drain
            while tasks:
                done, tasks = await asyncio.wait(tasks)
                for task in done:
                    task.result()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return attempted

    async def _process(self, batch: list[Claimed], limit: asyncio.Semaphore, started: asyncio.Future[None]) -> None:
        """Send a batch through at most `concurrency` runners (not a task per row), each row under the shared
        limit; `started` is set once every row has taken a slot."""
        rows = iter(enumerate(batch))
        left = len(batch)
        outcomes: list[Outcome | None] = [None] * left

        async def runner() -> None:
            nonlocal left
            while True:
                async with limit:
                    item = next(rows, None)
                    if item is None:
                        return
                    left -= 1
                    if not left and not started.done():
                        started.set_result(None)
                    outcomes[item[0]] = await self.send(item[1])

        keeper = asyncio.create_task(self._keep_leases([r.id for r in batch]))
        try:
            await asyncio.gather(*(runner() for _ in range(min(self.settings.concurrency, len(batch)))))
        finally:
            if not started.done():
                started.set_result(None)
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
        await self._record([o for o in outcomes if o is not None])

    async def _keep_leases(self, ids: list[int]) -> None:
        """A slow batch (WeCom timing out, retries) renews its lease every third of it, so no other worker takes
        its rows mid-send; only a dead worker's leases run out."""
        t, lease = _TABLE, timedelta(seconds=self.settings.lease_seconds)
        while True:
            await asyncio.sleep(lease.total_seconds() / 3)
            async with self.deps.sessions() as session, self.deps.writing(session), session.begin():
                await session.execute(
                    update(t).where(t.c.id.in_(ids), t.c.claimed_by == self.name, t.c.state == "sending")
                    .values(claimed_until=self.deps.clock.now() + lease)
                )

    async def recover_expired_leases(self) -> int:
        """Rows leased by a worker that died (its lease ran out) go back to pending, due now."""
        t, now = _TABLE, self.deps.clock.now()
        async with self.deps.sessions() as session, self.deps.writing(session), session.begin():
            conn = await session.connection()
            recovered = (await conn.execute(
                update(t)
                .where(t.c.state == "sending", t.c.claimed_until < now)
                # it may have been sent: its retry must reach back to the claim (next_attempt_at holds its time)
                .values(state="pending", next_attempt_at=now, claimed_by=None, claimed_until=None,
                        uncertain_since=func.coalesce(t.c.uncertain_since, t.c.next_attempt_at))
            )).rowcount
        if recovered > 0:
            log.warning("outbox: %d rows of a worker whose lease ran out are queued again", recovered)
        return max(recovered, 0)

    async def claim(self, limit: int | None = None) -> tuple[list[Claimed], int]:
        """Lease up to `limit` (batch_size) due rows; rows over a budget are deferred instead (returned as a count).

        One transaction: a single UPDATE ... RETURNING leases the due rows (their ids picked with FOR UPDATE SKIP
        LOCKED on PostgreSQL), then the budgets decide, and what they refuse, or what is too stale to send, is
        put back. Leasing first keeps the common case to one statement per batch."""
        s = self.settings
        now = self.deps.clock.now()
        t = _TABLE
        due = (
            select(t.c.id)
            .where(t.c.state == "pending", t.c.next_attempt_at <= now)
            .order_by(t.c.next_attempt_at, t.c.id)
            .limit(min(limit or s.batch_size, s.batch_size))
            .with_for_update(skip_locked=True)
        )
        lease = (
            update(t)
            .where(t.c.id.in_(due.scalar_subquery()))
            .values(state="sending", claimed_by=self.name, claimed_until=now + timedelta(seconds=s.lease_seconds),
                    next_attempt_at=now)  # the claim's time, while leased: where a crashed send's retry looks back to
            .returning(t.c.id, t.c.channel, t.c.recipient, t.c.msgtype, t.c.payload, t.c.attempts, t.c.content_hash,
                       t.c.uncertain_since)
        )
        async with self.deps.sessions() as session, self.deps.writing(session), session.begin():
            conn = await session.connection()
            rows = sorted(Claimed(*row) for row in await conn.execute(lease))  # RETURNING has no order: by id
            if not rows:
                return [], 0
            rows, stale = await split_stale_card_updates(session, rows, now, s.card_update_max_age_hours)
            sendable, later = await self.budgets.apply(session, rows, now)
            sendable, held = await self.dupes.apply(conn, sendable, now)
            later += held  # rows waiting for an identical one in flight are due again now: not counted below
            if stale:
                await conn.execute(
                    update(t).where(t.c.id.in_([r.id for r in stale]))
                    .values(state="failed", claimed_until=None, last_error=(
                        f"response_code older than {s.card_update_max_age_hours:g} h: WeCom no longer accepts "
                        "it; send a new card instead"))
                )
            if later:
                await conn.execute(
                    update(t).where(t.c.id == bindparam("_id"))
                    .values(state="pending", claimed_by=None, claimed_until=None,
                            next_attempt_at=bindparam("_next", type_=UTCDateTime())),
                    [{"_id": r.id, "_next": when} for r, when in later],
                )
        deferred = sum(1 for _, when in later if when > now)
        for label, n in (("failed", len(stale)), ("deferred", deferred)):
            if n:
                self.metrics.outbox_sends.labels(label).inc(n)
        return sendable, deferred + len(stale)

    async def send(self, row: Claimed) -> Outcome:
        """Deliver one leased row and describe what to write back (never raises for a WeCom failure).

        The outcome's values are already the bind parameters of `_record`'s UPDATE (one dict per row)."""
        attempt = Attempt(self.deps.clock.now())
        try:
            msgid, response_code, note = await self._deliver(row, attempt)
        except Exception as err:  # a bad payload or a bug must not stop the batch either: retried, then dead-lettered
            return self._failure(row, err, attempt.started if attempt.uncertain(err) else None)
        return Outcome(row.id, "sent", {
            "_id": row.id, "_sent_at": self.deps.clock.now(), "_msgid": msgid, "_code": response_code, "_error": note,
        })

    def _failure(self, row: Claimed, err: Exception, unsure: datetime | None) -> Outcome:
        """What to write back for a failed attempt; `unsure`: it started then and WeCom may have acted on it."""
        if isinstance(err, WeComRateLimited):
            # Not the message's fault and not an attempt: wait out the window.
            when = self.deps.clock.now() + timedelta(seconds=err.retry_after_seconds)
            return Outcome(row.id, "rate_limited",
                           self._values(row.id, "pending", row.attempts, when, error=str(err), unsure=unsure))
        if isinstance(err, BadRow | Unprotectable) or (
            isinstance(err, WeComAPIError) and err.errcode not in RETRYABLE_ERRORS
        ):
            log.warning("outbox %s to %s failed for good: %s", row.id, row.channel, err)
            return Outcome(row.id, "failed",
                           self._values(row.id, "failed", row.attempts + 1, None, error=str(err), unsure=unsure))
        if isinstance(err, WeComAPIError | WeComConnectionError):
            return self._retry(row, str(err), unsure)
        log.error("outbox %s: unexpected error", row.id, exc_info=err)
        return self._retry(row, f"{type(err).__name__}: {err}", unsure)

    def _values(
        self, row_id: int, state: str, attempts: int, when: datetime | None, *, error: str,
        unsure: datetime | None = None,
    ) -> dict[str, Any]:
        """`_record`'s parameters for a row not sent: next_attempt_at is NOT NULL, so a final state gets now."""
        return {
            "_id": row_id, "_state": state, "_attempts": attempts, "_next": when or self.deps.clock.now(),
            "_error": error[:2000], "_uncertain": unsure,
        }

    def _retry(self, row: Claimed, error: str, unsure: datetime | None = None) -> Outcome:
        attempts = row.attempts + 1
        if attempts >= self.settings.max_attempts:
            log.error("outbox %s to %s dead-lettered after %d attempts: %s", row.id, row.channel, attempts, error)
            return Outcome(row.id, "dead_letter", self._values(row.id, "failed", attempts, None, error=error,
                                                               unsure=unsure))
        when = self.deps.clock.now() + timedelta(seconds=backoff_seconds(
            attempts, self.settings.backoff_base_seconds, self.settings.backoff_max_seconds, jitter=True))
        return Outcome(row.id, "retry", self._values(row.id, "pending", attempts, when, error=error, unsure=unsure))

    async def _deliver(self, row: Claimed, attempt: Attempt) -> tuple[str | None, str | None, str | None]:
        """Call the API for the row's channel; returns (msgid, response_code, note)."""
        p = row.payload
        if row.channel == "app":
            body: dict[str, Any] = {"touser": row.recipient, "msgtype": row.msgtype, row.msgtype: p}
            configured = self.settings.duplicate_check_interval_seconds
            interval_for(row, attempt.started, configured, row.uncertain_since)  # Unprotectable: nothing sent

            def build() -> dict[str, Any]:  # the look-back is decided per try, at the moment it goes out
                interval = interval_for(row, self.deps.clock.now(), configured, attempt.unsure_since(row))
                return {**body, "enable_duplicate_check": 0 if interval is None else 1,
                        "duplicate_check_interval": interval or configured}

            result = await self.client.send_message(attempt.build(build))
            note = f"invalid users: {'|'.join(result.invalid_users)}" if result.invalid_users else None
            return result.msgid, result.response_code, note
        if row.channel == "appchat":
            await self.client.appchat_send({"chatid": row.recipient, "msgtype": row.msgtype, row.msgtype: p})
        elif row.channel == "webhook":
            await self.client.webhook_send(row.recipient, {"msgtype": row.msgtype, row.msgtype: p})
        elif row.channel == "card_update":
            if not p.get("response_code") or not ("button" in p or "template_card" in p):
                raise BadRow(f"outbox row {row.id}: card_update needs response_code and button or template_card")
            try:
                await self.client.update_template_card(attempt.build(lambda: {"userids": [row.recipient], **p}))
            except WeComAPIError as err:
                # A response code works once: after an attempt with an unknown outcome, "used" means it worked.
                if err.errcode != CODE_USED or not (row.uncertain_since is not None or attempt.tries > 1):
                    raise
                return None, None, "42022 after an attempt with an unknown outcome: that attempt applied it"
        else:
            raise BadRow(f"outbox row {row.id}: unknown channel {row.channel!r}")
        return None, None, None

    async def _record(self, outcomes: list[Outcome]) -> None:
        """Write every answer of a batch in one transaction; a row whose lease another worker took is left.

        Sent rows (nearly all) go through the driver's executemany with a narrow statement: at thousands of rows
        a second, SQLAlchemy's per-row parameter handling would cost more than sending them."""
        sent = [o.values for o in outcomes if o.label == "sent"]
        other = [o.values for o in outcomes if o.label != "sent"]
        for values in (sent, other):
            for v in values:
                v["_owner"] = self.name
        async with self.deps.sessions() as session, self.deps.writing(session), session.begin():
            conn = await session.connection()
            counts = [await _RECORD_SENT.run(conn, sent), await _RECORD_OTHER.run(conn, other)]
        written = -1 if -1 in counts else sum(counts)  # asyncpg does not count executemany's rows
        if 0 <= written < len(outcomes):
            log.warning("outbox: %d of %d results not written (lease taken over)", len(outcomes) - written,
                        len(outcomes))
        for label, n in Counter(o.label for o in outcomes).items():
            self.metrics.outbox_sends.labels(label).inc(n)

    def start(self) -> None:
        self.loop.start()

    async def stop(self) -> None:
        await self.loop.stop()


_BATCHES_AHEAD = 2  # batches claimed but not yet all started: enough to keep the wire busy during a claim
_FIRST_CLAIM = 100  # rows: about as many as go out while the next, full batch is claimed
_TABLE = OutboundMessage.metadata.tables[OutboundMessage.__tablename__]
_MINE = (_TABLE.c.id == bindparam("_id"), _TABLE.c.claimed_by == bindparam("_owner"), _TABLE.c.state == "sending")
_RECORD_SENT = Executemany(
    update(_TABLE).where(*_MINE).values(
        state="sent", attempts=_TABLE.c.attempts + 1, next_attempt_at=bindparam("_sent_at", type_=UTCDateTime()),
        sent_at=bindparam("_sent_at", type_=UTCDateTime()), claimed_until=None, msgid=bindparam("_msgid"),
        response_code=bindparam("_code"), last_error=bindparam("_error"),
    )
)
_RECORD_OTHER = Executemany(
    update(_TABLE).where(*_MINE).values(
        state=bindparam("_state"), attempts=bindparam("_attempts"),
        next_attempt_at=bindparam("_next", type_=UTCDateTime()), claimed_until=None, last_error=bindparam("_error"),
        uncertain_since=func.coalesce(_TABLE.c.uncertain_since, bindparam("_uncertain", type_=UTCDateTime())),
    )
)



async def outbox_ctx(app: web.Application) -> AsyncIterator[None]:
    """Create the worker under bot.keys.OUTBOX and run its loop unless `outbox.background` is off."""
    deps = app[DEPS]
    worker = OutboxWorker(deps, app[WECOM], app[METRICS])
    app[OUTBOX] = worker
    if deps.config.outbox.background:
        worker.start()
    try:
        yield
    finally:
        await worker.stop()
