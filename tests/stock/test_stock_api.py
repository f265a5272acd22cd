"""/api/alerts, /api/metrics/stores, /api/stock and the store gauges in /metrics."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import FakeClock
from bot.deps import Deps
from bot.events import TextMessage
from handlers import dispatch
from models.stock import book_move
from scheduler.stock_jobs import evaluate_rules
from tests.conftest import AppClient, auth
from tests.factories import Chain


async def test_alerts_listed_by_store_and_state(client: AppClient, chain: Chain, deps: Deps,
                                                sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as s, s.begin():
        await book_move(s, store_id=chain.stores["S002"].id, sku_id=chain.skus["A003"].id, kind="damage", qty=-21,
                        at=deps.clock.now())
    await evaluate_rules(deps)
    r = await client.get("/api/alerts", params={"store": "S002", "state": "open"}, headers=auth())
    body = await r.json()
    negative = [a for a in body if a["kind"] == "negative_stock"]
    assert len(negative) == 1
    assert {k: negative[0][k] for k in ("store", "sku", "state", "level")} == {
        "store": "S002", "sku": "A003", "state": "open", "level": "critical"}
    assert {a["store"] for a in body} == {"S002"}
    r = await client.get("/api/alerts", params={"state": "bogus"}, headers=auth())
    assert r.status == 400 and "state" in (await r.json())["error"]
    r = await client.get("/api/alerts", params={"store": "S999"}, headers=auth())
    assert r.status == 404
    assert (await client.get("/api/alerts")).status == 401


async def test_store_metrics_accuracy_and_slow_moving(client: AppClient, chain: Chain, deps: Deps, clock: FakeClock,
                                                      sessions: async_sessionmaker[AsyncSession]) -> None:
    for user, content in (("s1", "盘点 A001 20"), ("s1", "盘点 A002 19"), ("s3", "盘点 A001 20")):
        async with sessions() as s, s.begin():
            await dispatch(TextMessage(from_user=user, create_time=clock.now(), agent_id=1, content=content,
                                       msg_id=content), deps, s)
        clock.advance(seconds=5)
    day = clock.now().date().isoformat()
    r = await client.get("/api/metrics/stores", params={"from": day, "to": day}, headers=auth())
    view = await r.json()
    assert view["stores"]["S001"]["inventory_accuracy"] == 0.5
    assert view["stores"]["S002"]["inventory_accuracy"] == 1.0
    assert view["stores"]["S003"]["inventory_accuracy"] is None
    assert view["overall"]["counted_lines"] == 3
    # the counts moved A001/A002 at S001 and A001 at S002 today; the rest last moved on 11-01
    assert view["stores"]["S001"]["slow_moving_share"] == 0.6
    assert view["stores"]["S004"]["slow_moving_share"] == 1.0
    assert view["stores"]["S001"]["emergency_replenishments"] == 0
    r = await client.get("/api/metrics/stores", params={"from": "yesterday"}, headers=auth())
    assert r.status == 400
    clock.advance(timedelta(days=40))
    r = await client.get("/api/metrics/stores", headers=auth())
    assert (await r.json())["overall"]["counted_lines"] == 0
    text = await (await client.get("/metrics")).text()
    assert 'storebot_store_metric{metric="slow_moving_share",store="S001"}' in text


async def test_acknowledge_and_snooze_through_the_api(client: AppClient, chain: Chain, deps: Deps,
                                                      sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as s, s.begin():
        for sku in ("A001", "A002"):
            await book_move(s, store_id=chain.stores["S001"].id, sku_id=chain.skus[sku].id, kind="damage", qty=-18,
                            at=deps.clock.now())
    await evaluate_rules(deps)
    r = await client.post("/api/alerts/1/ack", json={"by": "m1"}, headers=auth())
    assert (r.status, await r.json()) == (200, {"id": 1, "changed": True})
    r = await client.post("/api/alerts/1/ack", headers=auth())
    assert r.status == 409 and "acknowledged" in (await r.json())["error"]
    r = await client.post("/api/alerts/2/snooze", json={"hours": 2}, headers=auth())
    assert r.status == 200
    r = await client.post("/api/alerts/2/snooze", json={"hours": -1}, headers=auth())
    assert r.status == 422 and "hours" in (await r.json())["error"]
    assert (await client.post("/api/alerts/99/ack", headers=auth())).status == 422
    body = await (await client.get("/api/alerts", params={"state": "acknowledged"}, headers=auth())).json()
    assert [(a["id"], a["acknowledged_by"]) for a in body] == [(1, "m1")]
