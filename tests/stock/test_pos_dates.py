"""A POS sale (or receipt) dated anywhere is refused: outside [now - max_sale_age_days, now + a day] it gets 422
naming the field, extreme dates and a 100k-deep JSON body get 4xx, never 500, and nothing is booked."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import FakeClock
from bot.config import Settings
from models.stock import Sale, StockLevel
from tests.conftest import AppClient, auth
from tests.factories import Chain
from tests.stock.test_pos import count_rows, on_hand, post_sale, sign


def dated(when: str, sale_id: str = "POS-D") -> bytes:
    return json.dumps({"sale_id": sale_id, "store": "S001", "sold_at": when,
                       "lines": [{"sku": "A001", "qty": 2, "unit_price": 3.5}]}).encode()


def iso(clock: FakeClock, **delta: float) -> str:
    return (clock.now() + timedelta(**delta)).astimezone().isoformat()


@pytest.mark.parametrize("when", [
    "2099-01-01T00:00:00+08:00", "0001-01-01T00:00:00+08:00", "0001-01-01T00:00:00+00:00",
    "9999-12-31T23:59:59-08:00", "9999-12-31T23:59:59+14:00", "1970-01-01T00:00:00Z",
])
async def test_sale_dated_in_an_absurd_year_is_422_naming_sold_at(
    client: AppClient, chain: Chain, sessions: async_sessionmaker[AsyncSession], when: str
) -> None:
    status, body = await post_sale(client, dated(when))
    assert status == 422 and body["error"].startswith("sold_at:")
    assert await count_rows(sessions, Sale) == 0
    assert await on_hand(sessions, chain) == 20


@pytest.mark.parametrize(("delta", "ok"), [
    ({"hours": 25}, False), ({"hours": 23}, True), ({"days": -36}, False), ({"days": -34}, True),
])
async def test_sale_more_than_a_day_ahead_or_older_than_the_ledger_window_is_refused(
    client: AppClient, chain: Chain, clock: FakeClock, sessions: async_sessionmaker[AsyncSession],
    delta: dict[str, float], ok: bool,
) -> None:
    status, body = await post_sale(client, dated(iso(clock, **delta)))
    if ok:
        assert status == 200 and await on_hand(sessions, chain) == 18
    else:
        assert status == 422 and "sold_at" in body["error"]
        assert await on_hand(sessions, chain) == 20


async def test_sale_window_follows_the_config(
    make_client: Callable[..., Awaitable[AppClient]], make_settings: Callable[..., Settings], chain: Chain,
    clock: FakeClock,
) -> None:
    client = await make_client(make_settings(pos={"max_sale_age_days": 3, "max_sale_ahead_hours": 1}))
    assert (await post_sale(client, dated(iso(clock, days=-4), "A")))[0] == 422
    assert (await post_sale(client, dated(iso(clock, hours=2), "B")))[0] == 422
    assert (await post_sale(client, dated(iso(clock, days=-2), "C")))[0] == 200


async def test_receipt_dated_in_year_1_is_422_naming_received_at(client: AppClient, chain: Chain) -> None:
    body = {"receipt_id": "R-Y1", "store": "S001", "received_at": "0001-01-01T00:00:00+08:00",
            "lines": [{"sku": "A001", "qty": 4}]}
    r = await client.post("/api/stock/receipts", json=body, headers=auth())
    assert r.status == 422 and (await r.json())["error"].startswith("received_at:")


@pytest.mark.parametrize("path", ["/api/pos/sales", "/api/stock/receipts", "/api/transfers"])
async def test_deeply_nested_json_body_is_refused_not_500(client: AppClient, chain: Chain, path: str) -> None:
    raw = b"[" * 100_000 + b"]" * 100_000
    headers = {**sign(raw), **auth()}
    r = await client.post(path, data=raw, headers=headers)
    assert r.status == 400
    assert "nested too deeply" in (await r.json())["error"]


async def test_a_late_sale_never_moves_last_sold_at_back(
    client: AppClient, chain: Chain, clock: FakeClock, sessions: async_sessionmaker[AsyncSession]
) -> None:
    assert (await post_sale(client, dated(iso(clock), "NOW")))[0] == 200
    assert (await post_sale(client, dated(iso(clock, days=-10), "OLD")))[0] == 200
    async with sessions() as s:
        level = (await s.execute(select(StockLevel).where(
            StockLevel.store_id == chain.stores["S001"].id, StockLevel.sku_id == chain.skus["A001"].id))).scalar_one()
    assert level.last_sold_at == clock.now() and level.last_moved_at == clock.now()
    assert level.on_hand == 16
