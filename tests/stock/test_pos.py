"""The POS sales webhook and the receipts API: signed, atomic, idempotent, and feeding the alert rules."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models.alert import Alert, AlertNotice
from models.stock import Sale, SaleLine, StockLevel, StockMove
from tests.conftest import TEST_POS_SECRET, AppClient, auth
from tests.factories import Chain


def sign(body: bytes, secret: str = TEST_POS_SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Storebot-Signature": f"sha256={digest}", "Content-Type": "application/json"}


def sale(sale_id: str = "POS-1", store: str = "S001", lines: list[dict[str, Any]] | None = None) -> bytes:
    return json.dumps({
        "sale_id": sale_id, "store": store, "sold_at": "2026-11-24T09:00:00+08:00",
        "lines": lines if lines is not None else [{"sku": "A001", "qty": 16, "unit_price": 2.0}],
        "customer_id": "C9",
    }).encode()


async def post_sale(client: AppClient, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    r = await client.post("/api/pos/sales", data=body, headers=sign(body) if headers is None else headers)
    return r.status, await r.json()


async def on_hand(sessions: async_sessionmaker[AsyncSession], chain: Chain, store: str = "S001",
                  sku: str = "A001") -> int:
    async with sessions() as s:
        level = (await s.execute(select(StockLevel.on_hand).where(
            StockLevel.store_id == chain.stores[store].id, StockLevel.sku_id == chain.skus[sku].id))).scalar_one()
        return int(level)


async def count_rows(sessions: async_sessionmaker[AsyncSession], model: Any) -> int:
    async with sessions() as s:
        return int((await s.execute(select(func.count()).select_from(model))).scalar_one())


async def test_sale_deducts_and_replay_is_a_duplicate_with_no_second_alert(
    client: AppClient, chain: Chain, sessions: async_sessionmaker[AsyncSession]
) -> None:
    status, body = await post_sale(client, sale())
    assert (status, body["duplicate"]) == (200, False)
    assert await on_hand(sessions, chain) == 4
    assert await count_rows(sessions, Alert) == 1
    assert await count_rows(sessions, AlertNotice) == 1  # the manager, first step of the chain
    status, body = await post_sale(client, sale())
    assert (status, body["duplicate"]) == (200, True)
    assert await on_hand(sessions, chain) == 4
    assert (await count_rows(sessions, Alert), await count_rows(sessions, AlertNotice)) == (1, 1)
    async with sessions() as s:
        moves = (await s.execute(select(StockMove).where(StockMove.kind == "sale"))).scalars().all()
        assert [(m.qty, m.balance_after, m.ref) for m in moves] == [(-16, 4, "sale:POS-1")]
        sold = (await s.execute(select(Sale))).scalar_one()
        assert (sold.customer_id, float(sold.total)) == ("C9", 32.0)


@pytest.mark.parametrize(
    ("headers", "why"),
    [({}, "missing"), ({"X-Storebot-Signature": "sha256=" + "0" * 64}, "wrong"),
     (sign(b"other body"), "other body"), (sign(sale(), "not-the-secret"), "other secret")],
)
async def test_wrong_signature_is_401_and_writes_nothing(
    client: AppClient, chain: Chain, sessions: async_sessionmaker[AsyncSession], headers: dict[str, str], why: str
) -> None:
    status, body = await post_sale(client, sale(), headers)
    assert status == 401, why
    assert "Signature" in body["error"]
    assert await count_rows(sessions, Sale) == 0
    assert await on_hand(sessions, chain) == 20


@pytest.mark.parametrize(
    ("lines", "store", "status", "names"),
    [
        ([{"sku": "A001", "qty": 1}, {"sku": "NOPE", "qty": 1}], "S001", 422, "NOPE"),
        ([{"sku": "A001", "qty": 1}], "S999", 422, "S999"),
        ([{"sku": "A001", "qty": -2}], "S001", 422, "lines.0.qty"),
        ([{"sku": "A001", "qty": 0}], "S001", 422, "lines.0.qty"),
        ([{"sku": "A001", "qty": 1.5}], "S001", 422, "lines.0.qty"),
        ([{"sku": "A001", "qty": 1}, {"sku": "A002", "qty": 10_001}], "S001", 422, "lines.1.qty"),
        ([{"sku": "A001", "qty": 1, "unit_price": -1}], "S001", 422, "lines.0.unit_price"),
        ([], "S001", 422, "lines"),
    ],
)
async def test_bad_sale_is_refused_whole_and_writes_nothing(
    client: AppClient, chain: Chain, sessions: async_sessionmaker[AsyncSession], lines: list[dict[str, Any]],
    store: str, status: int, names: str,
) -> None:
    got, body = await post_sale(client, sale(lines=lines, store=store))
    assert got == status
    assert names in body["error"]
    assert (await count_rows(sessions, Sale), await count_rows(sessions, SaleLine)) == (0, 0)
    assert await count_rows(sessions, StockMove) == 20  # the opening moves only
    assert await on_hand(sessions, chain) == 20


async def test_non_json_and_naive_time_are_refused(client: AppClient, chain: Chain) -> None:
    status, body = await post_sale(client, b"{not json")
    assert status == 400 and "JSON" in body["error"]
    naive = json.dumps({"sale_id": "X", "store": "S001", "sold_at": "2026-11-24T10:00:00",
                        "lines": [{"sku": "A001", "qty": 1}]}).encode()
    status, body = await post_sale(client, naive)
    assert status == 422 and "sold_at" in body["error"]


async def test_concurrent_twins_deduct_once(
    client: AppClient, chain: Chain, sessions: async_sessionmaker[AsyncSession]
) -> None:
    body = sale(lines=[{"sku": "A002", "qty": 3}, {"sku": "A001", "qty": 2}])
    results = await asyncio.gather(*(post_sale(client, body) for _ in range(5)))
    assert sorted(r[1]["duplicate"] for r in results) == [False, True, True, True, True]
    assert (await on_hand(sessions, chain), await on_hand(sessions, chain, sku="A002")) == (18, 17)


async def test_barcode_works_and_receipt_books_once(
    client: AppClient, chain: Chain, sessions: async_sessionmaker[AsyncSession]
) -> None:
    status, _ = await post_sale(client, sale(lines=[{"sku": "6900000000011", "qty": 2}]))
    assert status == 200 and await on_hand(sessions, chain) == 18
    receipt = {"receipt_id": "R-1", "store": "S001", "received_at": "2026-11-24T10:00:00+08:00",
               "lines": [{"sku": "A001", "qty": 12}]}
    r = await client.post("/api/stock/receipts", json=receipt)
    assert r.status == 401
    for duplicate in (False, True):
        r = await client.post("/api/stock/receipts", json=receipt, headers=auth())
        assert (r.status, (await r.json())["duplicate"]) == (200, duplicate)
    assert await on_hand(sessions, chain) == 30
    bad = {**receipt, "receipt_id": "R-2", "lines": [{"sku": "ZZZ", "qty": 1}]}
    r = await client.post("/api/stock/receipts", json=bad, headers=auth())
    assert r.status == 422 and "ZZZ" in (await r.json())["error"]
