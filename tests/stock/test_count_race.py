"""Counts and approvals racing on one store × SKU (two servers, two clerks, a click meeting a new count): the
level row's lock makes them queue, so one pending count remains and no difference is booked twice."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import FakeClock
from bot.deps import Deps
from models.count import StockCount
from tests.factories import Chain
from tests.stock.test_pos import on_hand
from tests.transfers.test_transfer import click, run, text


async def states(sessions: async_sessionmaker[AsyncSession]) -> list[str]:
    async with sessions() as s:
        return list((await s.execute(select(StockCount.state).order_by(StockCount.id))).scalars())


async def _two_counts_at_once(deps: Deps, chain: Chain, clock: FakeClock) -> None:
    await asyncio.wait_for(asyncio.gather(
        run(deps, text(clock, "s1", "盘点 A003 5")), run(deps, text(clock, "s2", "盘点 A003 4")),
    ), timeout=30)
    assert sorted(await states(deps.sessions)) == ["pending", "superseded"]
    assert await on_hand(deps.sessions, chain, sku="A003") == 20


async def _approval_meets_a_new_count(deps: Deps, chain: Chain, clock: FakeClock) -> None:
    await run(deps, text(clock, "s1", "盘点 A003 5"))
    clock.advance(minutes=1)
    await asyncio.wait_for(asyncio.gather(
        run(deps, text(clock, "s2", "盘点 A003 4")), run(deps, click(clock, "m1", "count:approve:1")),
    ), timeout=30)
    found = await states(deps.sessions)
    if found[0] == "approved":  # the approval went first: the newer count is compared with the booked 5
        assert found == ["approved", "booked"] and await on_hand(deps.sessions, chain, sku="A003") == 4
    else:  # the newer count went first: the old one cannot be approved any more
        assert found == ["superseded", "pending"] and await on_hand(deps.sessions, chain, sku="A003") == 20


async def test_two_counts_at_once_leave_one_pending(deps: Deps, chain: Chain, clock: FakeClock) -> None:
    await _two_counts_at_once(deps, chain, clock)


async def test_approval_meeting_a_new_count_books_once(deps: Deps, chain: Chain, clock: FakeClock) -> None:
    await _approval_meets_a_new_count(deps, chain, clock)


@pytest.mark.pg
async def test_two_counts_at_once_leave_one_pending_on_postgresql(deps: Deps, chain: Chain, clock: FakeClock) -> None:
    assert deps.sessions.kw["bind"].dialect.name == "postgresql"
    await _two_counts_at_once(deps, chain, clock)


@pytest.mark.pg
async def test_approval_meeting_a_new_count_books_once_on_postgresql(
    deps: Deps, chain: Chain, clock: FakeClock
) -> None:
    assert deps.sessions.kw["bind"].dialect.name == "postgresql"
    await _approval_meets_a_new_count(deps, chain, clock)
