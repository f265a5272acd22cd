"""bot.db.Executemany: rows written through the driver read back exactly as the ORM writes them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import FakeClock
from bot.db import Executemany
from models.base import UTCDateTime
from models.outbox import OutboundMessage, send_text

T = OutboundMessage.__table__
STMT = Executemany(
    update(T).where(T.c.id == bindparam("_id"), T.c.state == "pending").values(
        state="sent", attempts=T.c.attempts + 1, sent_at=bindparam("_at", type_=UTCDateTime()),
        next_attempt_at=bindparam("_at", type_=UTCDateTime()), msgid=bindparam("_msgid"),
    )
)


async def _queue(sessions: async_sessionmaker[AsyncSession], clock: FakeClock, n: int) -> list[int]:
    async with sessions() as session, session.begin():
        ids = [await send_text(session, f"u{i}", f"第{i}条", now=clock.now()) for i in range(n)]
    return [i for i in ids if i is not None]


async def test_values_are_converted_like_the_orm_and_fixed_values_come_from_the_statement(
    sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    ids = await _queue(sessions, clock, 3)
    sent_at = clock.now() + timedelta(seconds=5, microseconds=7)
    async with sessions() as session, session.begin():
        conn = await session.connection()
        matched = await STMT.run(conn, [{"_id": i, "_at": sent_at, "_msgid": f"m{i}"} for i in ids[:2]])
    assert matched in (2, -1)  # -1: asyncpg does not count executemany's rows
    async with sessions() as session:
        # compared in SQL: on SQLite a datetime stored in another text format would not match
        rows = (await session.execute(
            select(OutboundMessage.id, OutboundMessage.state, OutboundMessage.attempts, OutboundMessage.msgid)
            .where(OutboundMessage.sent_at == sent_at, OutboundMessage.next_attempt_at == sent_at)
            .order_by(OutboundMessage.id)
        )).all()
        untouched = await session.get(OutboundMessage, ids[2])
    assert [tuple(r) for r in rows] == [(ids[0], "sent", 1, f"m{ids[0]}"), (ids[1], "sent", 1, f"m{ids[1]}")]
    assert untouched is not None and untouched.state == "pending" and untouched.sent_at is None


async def test_a_missing_parameter_is_an_error_and_nothing_is_written(
    sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    [row_id] = await _queue(sessions, clock, 1)
    with pytest.raises(KeyError, match="_msgid"):
        async with sessions() as session, session.begin():
            conn = await session.connection()
            await STMT.run(conn, [{"_id": row_id, "_at": clock.now()}])
    async with sessions() as session:
        row = await session.get(OutboundMessage, row_id)
    assert row is not None and row.state == "pending"


async def test_no_rows_is_no_statement(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session, session.begin():
        assert await STMT.run(await session.connection(), []) == 0
