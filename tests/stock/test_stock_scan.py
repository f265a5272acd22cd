"""Scan in / out / count from the app menu: the scan opens a conversation in the database, the number books it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.keys import MENU_TASK
from models.conversation import Conversation
from models.count import StockCount
from models.stock import StockMove
from tests.factories import Chain
from tests.fixtures_sandbox import Harness
from tests.stock.test_pos import on_hand


async def scan(h: Harness, userid: str, key: str, code: str) -> None:
    outcome = await h.sandbox.user_scan(userid, key, code)
    assert outcome.ok
    await h.settle()


async def test_scan_in_then_quantity_books_a_receipt(harness: Harness, chain: Chain,
                                                     sessions: async_sessionmaker[AsyncSession]) -> None:
    h = harness
    await scan(h, "s1", "scan_in", "EAN_13,6900000000011")
    assert "请回复入库数量" in h.texts_for("s1")[-1]
    h.clock.advance(seconds=20)
    await h.say("s1", "１２")  # full-width digits are fine
    assert await on_hand(sessions, chain) == 32
    assert "入库已登记" in h.texts_for("s1")[-1] and "现有库存 32" in h.texts_for("s1")[-1]
    h.clock.advance(seconds=20)
    await h.say("s1", "5")  # the conversation answered once: a bare number now is not understood
    assert await on_hand(sessions, chain) == 32


async def test_scan_out_books_damage_and_scan_count_records_a_count(
    harness: Harness, chain: Chain, sessions: async_sessionmaker[AsyncSession]
) -> None:
    h = harness
    await scan(h, "s1", "scan_out", "6900000000011")
    h.clock.advance(seconds=10)
    await h.say("s1", "3")
    assert await on_hand(sessions, chain) == 17
    h.clock.advance(seconds=10)
    await scan(h, "s2", "scan_count", "6900000000028")
    h.clock.advance(seconds=10)
    await h.say("s2", "19")
    assert await on_hand(sessions, chain, sku="A002") == 19
    async with sessions() as s:
        kinds = sorted((await s.execute(select(StockMove.kind).where(StockMove.kind != "opening"))).scalars())
        assert kinds == ["count_adjustment", "damage"]
        assert (await s.execute(select(func.count()).select_from(StockCount))).scalar_one() == 1


async def test_expired_conversation_is_ignored(harness: Harness, chain: Chain,
                                               sessions: async_sessionmaker[AsyncSession]) -> None:
    h = harness
    await scan(h, "s1", "scan_in", "6900000000011")
    h.clock.advance(minutes=11)  # conversation_ttl_minutes = 10
    await h.say("s1", "12")
    assert await on_hand(sessions, chain) == 20
    assert "入库已登记" not in h.texts_for("s1")[-1]
    async with sessions() as s:
        assert (await s.execute(select(func.count()).select_from(Conversation))).scalar_one() == 0


async def test_unknown_barcode_and_bad_quantity(harness: Harness, chain: Chain,
                                                sessions: async_sessionmaker[AsyncSession]) -> None:
    h = harness
    await scan(h, "s1", "scan_in", "1234")
    assert "1234 不在商品表里" in h.texts_for("s1")[-1]
    h.clock.advance(seconds=10)
    await scan(h, "s1", "scan_in", "6900000000011")
    h.clock.advance(seconds=10)
    await h.say("s1", "99999999")
    assert "数量" in h.texts_for("s1")[-1]
    h.clock.advance(seconds=10)
    await h.say("s1", "4")  # the conversation survived the bad number
    assert await on_hand(sessions, chain) == 24


async def test_menu_with_scan_buttons_is_created_at_start(
    sandbox: Any, make_client: Callable[..., Awaitable[Any]], make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(wecom={"api_base": sandbox.config.public_url, "create_menu": True},
                             inbox={"workers": 0}, outbox={"background": False})
    client = await make_client(settings)
    async with asyncio.timeout(5):
        await client.server.app[MENU_TASK]  # menu/create runs in the background so a slow WeCom never delays start
    [entry] = sandbox.menus[settings.wecom.agent_id]["button"]
    assert [(b["type"], b["key"]) for b in entry["sub_button"]] == [
        ("scancode_waitmsg", "scan_in"), ("scancode_waitmsg", "scan_out"), ("scancode_waitmsg", "scan_count")]
