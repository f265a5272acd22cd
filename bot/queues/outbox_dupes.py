"""WeCom's duplicate check for app messages, decided from the outbox table: what was really sent, by any process.

WeCom answers a message identical to one sent to the same member inside `duplicate_check_interval` (looking back
from the new request) with errcode 0 and the earlier msgid, and delivers it to nobody (wecom-api.md §3). That is
what makes a retry after an unknown outcome (a timeout after WeCom delivered, a crash mid-send) safe, and what
swallows a second row that merely has the same text (a member asking `库存 A002` twice). So every app message
carries the check, with an interval chosen per try from the table:

- long enough to reach back to the row's own earliest attempt whose outcome is unknown (`uncertain_since`, or
  an earlier try of the same call);
- short enough to leave out the last OTHER identical message sent to that member (`prev_sent_at`).

Both can hold because an identical row never starts while another is in flight or unknown (it is deferred):
its attempts come after the other's answer. Sending every message with the check (not only retries) also
covers a WeCom that remembers checked sends only. Only an identical send less than about two seconds before
leaves no room: a first try then goes without the check, a retry with it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.errors import WeComAPIError
from bot.queues.outbox_budgets import Claimed

MAX_INTERVAL = 4 * 3600  # seconds: the longest look-back WeCom accepts
MARGIN = 1  # second, each side: WeCom counts in whole seconds and registers a send between our start and answer
CODE_USED = 42022  # update_template_card: the response code was used already


class Attempt:
    """One outbox attempt at a row: when it started and how many tries the client made (each builds its body)."""

    def __init__(self, started: datetime) -> None:
        self.started = started
        self.tries = 0

    def build(self, make: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
        def body() -> dict[str, Any]:
            self.tries += 1
            return make()

        return body

    def unsure_since(self, row: Claimed) -> datetime | None:
        """For the try being built: since when an outcome is unknown (an earlier attempt, or try of this call)."""
        return row.uncertain_since or (self.started if self.tries > 1 else None)

    def uncertain(self, err: BaseException) -> bool:
        """May WeCom have acted on it? Yes if a try got no answer, and for every try but the last."""
        return self.tries > 1 or (self.tries == 1 and not isinstance(err, WeComAPIError))


class Unprotectable(Exception):
    """The row's unknown attempt is older than WeCom's check can reach: resending could deliver it twice."""


def interval_for(row: Claimed, now: datetime, configured: int, unsure_since: datetime | None) -> int | None:
    """duplicate_check_interval (seconds) for a try of `row` going out at `now`; None: send without the check.

    `unsure_since`: the start of the row's earliest attempt (or earlier try of this call) whose outcome is
    unknown; the look-back must reach it. The last other identical send must stay outside it."""
    need = 0
    if unsure_since is not None:
        need = math.ceil((now - unsure_since).total_seconds()) + MARGIN
        if need > MAX_INTERVAL:
            raise Unprotectable(
                f"outcome of an attempt {need} s ago unknown; WeCom's duplicate check reaches back {MAX_INTERVAL} s "
                "at most, so a resend could be delivered twice: not resent")
    interval = max(configured, need)
    if row.prev_sent_at is not None:
        upper = math.floor((now - row.prev_sent_at).total_seconds()) - MARGIN
        if upper < max(need, 1):
            # Too close to the last identical send to tell the two apart: a first try goes without the check
            # (it must not be swallowed); a retry keeps it (rather swallowed than delivered twice).
            return min(need, MAX_INTERVAL) if need else None
        interval = min(interval, upper)
    return min(interval, MAX_INTERVAL)


class DuplicateGate:
    """Decides, inside the claim's transaction, which leased app rows may go now and with what look-back."""

    def __init__(self, table: Table) -> None:
        self.t = table

    async def apply(
        self, conn: AsyncConnection, rows: list[Claimed], now: datetime
    ) -> tuple[list[Claimed], list[tuple[Claimed, datetime]]]:
        """Split rows into (sendable, with prev_sent_at filled in) and (deferred, until when).

        One grouped query finds the hashes that have another row, pending, in flight or sent inside the longest
        window (nearly always none); only for those are the rows read. On PostgreSQL the budgets' per-recipient
        advisory locks, taken earlier in this transaction, serialise two workers deciding for one member."""
        t = self.t
        hashes = sorted({r.content_hash for r in rows if r.channel == "app" and r.content_hash})
        if not hashes:
            return rows, []
        recent = or_(t.c.sent_at.is_(None), t.c.sent_at >= now - timedelta(seconds=MAX_INTERVAL))
        shared = (await conn.execute(
            select(t.c.content_hash).where(t.c.content_hash.in_(hashes), recent)
            .group_by(t.c.content_hash).having(func.count() > 1)
        )).scalars().all()
        if not shared:
            return rows, []
        others: dict[str, list[Any]] = defaultdict(list)
        for other in await conn.execute(
            select(t.c.id, t.c.content_hash, t.c.state, t.c.sent_at, t.c.uncertain_since, t.c.next_attempt_at)
            .where(t.c.content_hash.in_(sorted(shared)), recent, t.c.state.in_(("pending", "sending", "sent")))
        ):
            others[other.content_hash].append(other)
        batch = {r.id for r in rows}
        sendable: list[Claimed] = []
        later: list[tuple[Claimed, datetime]] = []
        for row in rows:
            group = others.get(row.content_hash or "") if row.channel == "app" else None
            if not group:
                sendable.append(row)
                continue
            until, prev = self._decide(row, group, batch, now)
            if until is not None:
                later.append((row, until))
            else:
                sendable.append(row._replace(prev_sent_at=prev))
        return sendable, later

    @staticmethod
    def _decide(
        row: Claimed, group: list[Any], batch: set[int], now: datetime
    ) -> tuple[datetime | None, datetime | None]:
        """(defer until, None) or (None, the last other identical send). Of identical rows that could go, the one
        with an unknown outcome goes first, then the lowest id; the others wait for its answer."""
        mine = (row.uncertain_since is None, row.id)
        until: datetime | None = None
        prev: datetime | None = None
        for other in group:
            if other.id == row.id:
                continue
            first = (other.uncertain_since is None, other.id) < mine
            blocked: datetime | None = None
            if other.state == "sending" and (other.id not in batch or first):
                blocked = now  # in flight: try again once its answer is in
            elif other.state == "pending" and other.uncertain_since is not None and first:
                blocked = max(now, other.next_attempt_at)  # its retry goes first
            elif other.state == "sent" and other.sent_at is not None:
                prev = other.sent_at if prev is None else max(prev, other.sent_at)
            if blocked is not None:
                until = blocked if until is None else max(until, blocked)
        return until, (prev if until is None else None)
