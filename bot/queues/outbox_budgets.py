"""Per-recipient send budgets for the outbox (WeCom silently drops the excess) and stale card updates."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, case, func, literal, or_, select, text, union_all
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from bot.config import OutboxSettings
from models.outbox import OutboundMessage


class Claimed(NamedTuple):
    """What the sender needs of a leased row (a snapshot: no ORM object crosses the transaction; a tuple, as
    thousands are made per second)."""

    id: int
    channel: str
    recipient: str
    msgtype: str
    payload: dict[str, Any]
    attempts: int
    content_hash: str | None = None  # app messages: what WeCom's duplicate check compares
    uncertain_since: datetime | None = None  # an earlier attempt's outcome is unknown since then
    prev_sent_at: datetime | None = None  # the last other identical message to this member (bot/queues/outbox_dupes.py)


@dataclass(frozen=True)
class Window:
    seconds: int
    limit: int


class Budgets:
    """Per-recipient send budgets (WeCom silently drops the excess), counted from the table so they hold across
    processes: rows sent inside the window plus rows other workers are sending right now."""

    # Defer a little past the window's edge: our sent_at is taken after WeCom's answer, WeCom counts earlier.
    MARGIN = timedelta(seconds=1)

    def __init__(self, settings: OutboxSettings) -> None:
        self.windows = {
            "app": (Window(60, settings.per_member_per_minute), Window(3600, settings.per_member_per_hour)),
            "webhook": (Window(60, settings.robot_per_minute),),
        }

    async def apply(
        self, session: AsyncSession, rows: list[Claimed], now: datetime
    ) -> tuple[list[Claimed], list[tuple[Claimed, datetime]]]:
        """Split leased rows into those the budgets allow now and those deferred (with when they may go).

        The rows are already leased ('sending') in this transaction, so the usage counted from the table
        includes them: a recipient whose count stays within every limit can have all its rows. The database
        returns only the recipients over a limit (nearly always none); their rows are granted one by one up to
        the limit, and the oldest send in the full window says when the rest may go."""
        keys = sorted({(r.channel, r.recipient) for r in rows if r.channel in self.windows})
        if not keys:
            return rows, []
        conn = await session.connection()
        if conn.dialect.name == "postgresql":
            # Serialise budget decisions per recipient across processes; sorted, so two workers cannot deadlock.
            locks = sorted({_lock_key(c, r) for c, r in keys})
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS k"), {"keys": locks}
            )
        over = await self._over_limit(conn, keys, now)
        if not over:
            return rows, []
        share = Counter((r.channel, r.recipient) for r in rows if (r.channel, r.recipient) in over)
        used = {key: [n - share[key] for n in counts] for key, counts in over.items()}  # before this batch
        sendable: list[Claimed] = []
        full: list[tuple[Claimed, list[Window]]] = []
        for row in rows:
            counts = used.get((row.channel, row.recipient))
            if counts is None:
                sendable.append(row)
                continue
            windows = self.windows[row.channel]
            closed = [w for w, n in zip(windows, counts, strict=True) if n >= w.limit]
            if closed:
                full.append((row, closed))
                continue
            for i in range(len(counts)):
                counts[i] += 1
            sendable.append(row)
        oldest = await self._oldest(conn, sorted({(r.channel, r.recipient) for r, _ in full}), now)
        later = [
            (row, max((oldest.get((row.channel, row.recipient, w.seconds)) or now) + timedelta(seconds=w.seconds)
                      + self.MARGIN for w in closed))
            for row, closed in full
        ]
        return sendable, later

    async def _over_limit(
        self, conn: AsyncConnection, keys: list[tuple[str, str]], now: datetime
    ) -> dict[tuple[str, str], list[int]]:
        """The recipients whose usage is over a limit in some window, with their usage per window: the rows sent
        inside it plus every row being sent now. Two index paths: rows being sent by (state, next_attempt_at),
        recent sends by (recipient, sent_at), so a recipient's long history is never read."""
        m = OutboundMessage
        over: dict[tuple[str, str], list[int]] = {}
        for channel, recipients in _by_channel(keys):
            windows = self.windows[channel]
            names = [f"w{i}" for i in range(len(windows))]
            sending = select(m.recipient, *(literal(1).label(n) for n in names)).where(
                m.state == "sending", m.channel == channel, m.recipient.in_(recipients)
            )
            sent = select(m.recipient, *(
                case((m.sent_at >= now - timedelta(seconds=w.seconds), 1), else_=0).label(n)
                for w, n in zip(windows, names, strict=True)
            )).where(*self._sent_within(channel, recipients, now))
            usage = union_all(sending, sent).subquery()
            totals = [func.sum(usage.c[n]) for n in names]
            stmt = (
                select(usage.c.recipient, *totals)
                .group_by(usage.c.recipient)
                .having(or_(*(total > w.limit for total, w in zip(totals, windows, strict=True))))
            )
            for recipient, *counts in await conn.execute(stmt):
                over[(channel, recipient)] = [int(c or 0) for c in counts]
        return over

    async def _oldest(
        self, conn: AsyncConnection, keys: list[tuple[str, str]], now: datetime
    ) -> dict[tuple[str, str, int], datetime]:
        """Per (channel, recipient, window seconds): the earliest send inside that window, if any."""
        m = OutboundMessage
        oldest: dict[tuple[str, str, int], datetime] = {}
        for channel, recipients in _by_channel(keys):
            windows = self.windows[channel]
            columns = [func.min(case((m.sent_at >= now - timedelta(seconds=w.seconds), m.sent_at))) for w in windows]
            stmt = (
                select(m.recipient, *columns)
                .where(*self._sent_within(channel, recipients, now))
                .group_by(m.recipient)
            )
            for recipient, *firsts in await conn.execute(stmt):
                for w, first in zip(windows, firsts, strict=True):
                    if first is not None:
                        oldest[(channel, recipient, w.seconds)] = first
        return oldest

    def _sent_within(self, channel: str, recipients: list[str], now: datetime) -> tuple[ColumnElement[bool], ...]:
        """Rows sent to these recipients inside the channel's longest window (read by (recipient, sent_at))."""
        m = OutboundMessage
        longest = now - timedelta(seconds=max(w.seconds for w in self.windows[channel]))
        return (m.recipient.in_(recipients), m.sent_at >= longest, m.channel == channel, m.state == "sent")


def _by_channel(keys: list[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    channels = sorted({c for c, _ in keys})
    return [(channel, [r for c, r in keys if c == channel]) for channel in channels]


def _lock_key(channel: str, recipient: str) -> int:
    digest = hashlib.blake2b(f"outbox-budget:{channel}:{recipient}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def split_stale_card_updates(
    session: AsyncSession, rows: list[Claimed], now: datetime, max_age_hours: float
) -> tuple[list[Claimed], list[Claimed]]:
    """A response_code works within 72 h of being issued: at the click (the update row was queued then) or
    at the card's own send (its outbox row kept the code). Older ones fail at the claim, before any call."""
    updates = [r for r in rows if r.channel == "card_update"]
    if not updates:
        return rows, []
    m = OutboundMessage
    queued: dict[int, datetime] = dict(
        (await session.execute(select(m.id, m.created_at).where(m.id.in_([r.id for r in updates])))).all()
    )
    codes = {str(r.payload.get("response_code", "")) for r in updates}
    issued = {
        row[0]: row[1]
        for row in await session.execute(
            select(m.response_code, m.sent_at).where(m.response_code.in_(codes), m.sent_at.is_not(None))
        )
    }
    max_age = timedelta(hours=max_age_hours)
    stale: list[Claimed] = []
    for r in updates:
        origin = min(t for t in (queued[r.id], issued.get(str(r.payload.get("response_code")))) if t is not None)
        if now - origin > max_age:
            stale.append(r)
    stale_ids = {r.id for r in stale}
    return [r for r in rows if r.id not in stale_ids], stale
