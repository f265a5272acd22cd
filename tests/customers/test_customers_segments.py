"""Profiles, lifecycle stages and rule segments through the real API, on a small chain whose every stage is known."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import FakeClock
from bot.config import Settings
from bot.deps import Deps
from bot.errors import ConfigError
from bot.keys import DEPS
from scheduler.customer_jobs import rebuild_segments
from tests.conftest import AppClient, auth
from tests.customer_support import Member, add_members, make_settings, sell
from tests.factories import Chain

Sessions = async_sessionmaker[AsyncSession]
SEED_HIGH_POTENTIAL = {"all": [{"metric": "purchases", "days": 30, "op": ">=", "value": 3},
                               {"metric": "avg_basket", "days": 30, "op": ">", "times_mean": 1.5}]}

__all__ = ["make_settings"]  # a fixture: the POS date window opened for member history


async def seed_stages(client: AppClient, sessions: Sessions, chain: Chain, clock: FakeClock) -> None:
    """One member per stage: H1 high potential, A1/A2 active, N1 new, R1 at risk, D1 dormant, L1/L2 lost."""
    now = clock.now()
    old = now - timedelta(days=200)
    ids = ["H1", "A1", "A2", "R1", "D1", "L1", "L2"]
    members = [Member(i, joined_at=old, tags=("vip",) if i in ("H1", "D1") else ()) for i in ids]
    members.append(Member("N1", joined_at=now - timedelta(days=5), home_store="S002"))
    await add_members(sessions, chain, members, now)
    sales: list[tuple[str, float, int]] = [("H1", 100, 2), ("H1", 100, 9), ("H1", 100, 20), ("A1", 20, 10),
                                           ("A2", 20, 3), ("A2", 20, 4), ("A2", 20, 5), ("R1", 50, 45),
                                           ("D1", 50, 100), ("L1", 50, 300)]
    for n, (cid, amount, days_ago) in enumerate(sales):
        await sell(client, f"P{n}", cid, amount, now - timedelta(days=days_ago))


async def put(client: AppClient, key: str, rule: Any, name: str = "人群") -> tuple[int, dict[str, Any]]:
    r = await client.put(f"/api/segments/{key}", json={"name": name, "rule": rule}, headers=auth())
    return r.status, await r.json()


async def test_profile_shows_stage_windowed_figures_and_segments(
    client: AppClient, sessions: Sessions, chain: Chain, clock: FakeClock,
) -> None:
    await seed_stages(client, sessions, chain, clock)
    assert (await put(client, "hp", SEED_HIGH_POTENTIAL))[0] == 200
    r = await client.get("/api/customers/H1", headers=auth())
    body = await r.json()
    assert r.status == 200
    assert {k: body[k] for k in ("customer_id", "home_store", "stage", "purchases_30d", "spend_30d",
                                 "avg_basket_30d", "segments")} == {
        "customer_id": "H1", "home_store": "S001", "stage": "high_potential", "purchases_30d": 3,
        "spend_30d": 300.0, "avg_basket_30d": 100.0, "segments": ["hp"]}
    assert body["last_purchase_at"] == (clock.now() - timedelta(days=2)).isoformat()
    r = await client.get("/api/customers/NOBODY", headers=auth())
    assert r.status == 404


@pytest.mark.parametrize(("member", "stage"), [("H1", "high_potential"), ("A1", "active"), ("A2", "active"),
                                               ("N1", "new"), ("R1", "at_risk"), ("D1", "dormant"), ("L1", "lost"),
                                               ("L2", "lost")])
async def test_every_stage_by_the_configured_thresholds(
    client: AppClient, sessions: Sessions, chain: Chain, clock: FakeClock, member: str, stage: str,
) -> None:
    await seed_stages(client, sessions, chain, clock)
    await rebuild_segments(client.app[DEPS])  # high potential is granted by the rebuild (it needs the chain mean)
    assert (await (await client.get(f"/api/customers/{member}", headers=auth())).json())["stage"] == stage
    status, seg = await put(client, f"stage_{stage}", {"stage": stage})  # the set-based SQL says the same
    assert status == 200 and member in seg["sample"]


async def test_segments_count_sample_and_paging(client: AppClient, sessions: Sessions, chain: Chain,
                                                clock: FakeClock) -> None:
    await seed_stages(client, sessions, chain, clock)
    status, body = await put(client, "hp", SEED_HIGH_POTENTIAL, "高潜")
    assert (status, body["count"], body["sample"], body["version"], body["stale"]) == (200, 1, ["H1"], 1, False)
    assert body["built_at"] == clock.now().isoformat()
    cases: list[tuple[Any, list[str]]] = [
        ({"metric": "days_since_purchase", "op": ">=", "value": 60}, ["D1", "L1", "L2", "N1"]),  # never = endless
        ({"metric": "days_since_purchase", "op": "<", "value": 10}, ["A2", "H1"]),
        ({"all": [{"tag": "vip"}, {"not": {"stage": "high_potential"}}]}, ["D1"]),
        ({"any": [{"home_store": "S002"}, {"metric": "spend", "days": 90, "op": ">", "value": 250}]}, ["H1", "N1"]),
        ({"not": {"metric": "avg_basket", "days": 30, "op": ">=", "value": 20}}, ["D1", "L1", "L2", "N1", "R1"]),
        ({"metric": "purchases", "days": 365, "op": "==", "value": 1}, ["A1", "D1", "L1", "R1"]),
    ]
    for i, (rule, expected) in enumerate(cases):
        status, body = await put(client, f"s{i}", rule)
        assert (status, body["sample"], body["count"]) == (200, expected, len(expected)), rule
    status, body = await put(client, "hp", {"stage": "lost"}, "高潜")
    assert (body["version"], body["sample"]) == (2, ["L1", "L2"])
    r = await client.get("/api/segments/s4/members", params={"limit": "2"}, headers=auth())
    first = await r.json()
    assert (first["members"], first["next"]) == (["D1", "L1"], "L1")
    r = await client.get("/api/segments/s4/members", params={"limit": "2", "after": "L1"}, headers=auth())
    assert (await r.json())["members"] == ["L2", "N1"]
    assert (await client.get("/api/segments/nope", headers=auth())).status == 404


@pytest.mark.parametrize(("rule", "where"), [
    ({"all": [{"metric": "purchases", "days": 30, "op": ">=", "value": 3},
              {"metric": "avg_basket", "days": 30, "op": "=>", "times_mean": 1.5}]}, "rule.all[1].op"),
    ({"any": []}, "rule.any"),
    ({"not": {"stage": "sleepy"}}, "rule.not.stage"),
    ({"metric": "purchases", "days": 30, "op": ">=", "value": 3, "times_mean": 2}, "rule:"),
    ({"metric": "purchases", "days": "30", "op": ">=", "value": 3}, "rule.days"),
    ({"metric": "days_since_purchase", "days": 30, "op": ">=", "value": 3}, "rule.days"),
    ({"all": [{"tag": "x"}, {"all": [{"metric": "views", "days": 7, "op": ">", "value": True}]}]},
     "rule.all[1].all[0].value"),
    ("DROP TABLE customers", "rule:"),
])
async def test_bad_rule_is_422_naming_the_place_in_the_tree(client: AppClient, chain: Chain, rule: Any,
                                                            where: str) -> None:
    status, body = await put(client, "bad", rule)
    assert status == 422 and body["error"].startswith(where), body
    assert (await client.get("/api/segments/bad", headers=auth())).status == 404


async def test_config_segments_are_rebuilt_by_the_job_and_a_bad_one_refused_at_start(
    client: AppClient, sessions: Sessions, chain: Chain, clock: FakeClock, make_settings: Callable[..., Settings],
    deps: Deps,
) -> None:
    await seed_stages(client, sessions, chain, clock)
    settings = make_settings(segments=[{"key": "high_potential", "name": "高潜会员", "rule": SEED_HIGH_POTENTIAL},
                                       {"key": "dormant", "name": "沉睡", "rule": {"stage": "dormant"}}])
    job_deps = Deps(config=settings, sessions=sessions, clock=clock, data_dir=deps.data_dir)
    assert await rebuild_segments(job_deps) == {"dormant": 1, "high_potential": 1}
    body = await (await client.get("/api/segments/dormant", headers=auth())).json()
    assert (body["name"], body["sample"], body["stale"]) == ("沉睡", ["D1"], False)
    clock.advance(hours=3)
    assert (await (await client.get("/api/segments/dormant", headers=auth())).json())["stale"] is True
    with pytest.raises(ConfigError, match=r"segments\.0\.rule.*rule\.op"):
        make_settings(segments=[{"key": "x", "name": "x", "rule": {"metric": "spend", "days": 30, "op": "~",
                                                                   "value": 1}}])
