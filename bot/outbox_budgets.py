"""Per-recipient send budgets for the outbox: WeCom silently drops what exceeds them, so the bot never sends it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import and_, case, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import OutboxSettings
from models.base import dialect_name
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
    created_at: datetime


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
        """Split claimed rows into those the budgets allow now and those deferred (with when they may go)."""
        keys = sorted({(r.channel, r.recipient) for r in rows if r.channel in self.windows})
        if not keys:
            return rows, []
        if dialect_name(session) == "postgresql":
            # Serialise budget decisions per recipient across processes; sorted, so two workers cannot deadlock.
            locks = sorted({_lock_key(c, r) for c, r in keys})
            await session.execute(
                text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS k"), {"keys": locks}
            )
        used = await self._usage(session, keys, now)
        sendable: list[Claimed] = []
        later: list[tuple[Claimed, datetime]] = []
        for row in rows:
            windows = self.windows.get(row.channel)
            if windows is None:
                sendable.append(row)
                continue
            use = used.setdefault((row.channel, row.recipient), [[0, None] for _ in windows])
            waits = [
                (oldest or now) + timedelta(seconds=w.seconds) + self.MARGIN
                for w, (n, oldest) in zip(windows, use, strict=True)
                if n >= w.limit
            ]
            if waits:
                later.append((row, max(waits)))
                continue
            for u in use:
                u[0] = int(u[0] or 0) + 1
                u[1] = u[1] or now
            sendable.append(row)
        return sendable, later

    async def _usage(
        self, session: AsyncSession, keys: list[tuple[str, str]], now: datetime
    ) -> dict[tuple[str, str], list[list[Any]]]:
        """Per (channel, recipient): [count, oldest sent_at] for each of the channel's windows (the batch being
        decided is still pending, so it does not count itself)."""
        m = OutboundMessage
        used: dict[tuple[str, str], list[list[Any]]] = {}
        for channel in sorted({c for c, _ in keys}):
            windows = self.windows[channel]
            columns: list[Any] = []
            for w in windows:
                since = now - timedelta(seconds=w.seconds)
                columns.append(func.sum(case((or_(m.sent_at.is_(None), m.sent_at >= since), 1), else_=0)))
                columns.append(func.min(case((m.sent_at >= since, m.sent_at))))
            longest = now - timedelta(seconds=max(w.seconds for w in windows))
            stmt = (
                select(m.recipient, *columns)
                .where(
                    m.channel == channel,
                    m.recipient.in_([r for c, r in keys if c == channel]),
                    or_(and_(m.state == "sent", m.sent_at >= longest), m.state == "sending"),
                )
                .group_by(m.recipient)
            )
            for recipient, *values in await session.execute(stmt):
                used[(channel, recipient)] = [[values[i], values[i + 1]] for i in range(0, len(values), 2)]
        return used


def _lock_key(channel: str, recipient: str) -> int:
    digest = hashlib.blake2b(f"outbox-budget:{channel}:{recipient}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
