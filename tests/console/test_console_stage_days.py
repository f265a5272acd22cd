"""Lifecycle stage history: the stage rebuild writes one snapshot per China-local day (a second rebuild the same
day replaces its counts), and the 客户 board charts it per day, scoped to the viewer's stores."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.config_customers import CustomersSettings
from models.customer import Customer
from models.customer_stage import rebuild_stages
from models.customer_stage_day import CustomerStageDay, local_date
from tests.board_support import NOW, BoardRows, seed_board_rows
from tests.console_support import sign_in


@pytest.fixture
async def rows(sessions: Any, chain: Any, settings: Any) -> BoardRows:
    async with sessions() as session, session.begin():
        return await seed_board_rows(session, chain, Path(settings.server.data_dir))


async def _rebuild(sessions: Any) -> None:
    async with sessions() as session, session.begin():
        await rebuild_stages(session, CustomersSettings(), NOW)


async def _snapshot(sessions: Any) -> dict[tuple[str, int | None], int]:
    async with sessions() as session:
        got = (await session.execute(select(CustomerStageDay.stage, CustomerStageDay.store_id,
                                            CustomerStageDay.members, CustomerStageDay.day))).all()
        assert {d for *_, d in got} <= {local_date(NOW)}
        return {(st, sid): n for st, sid, n, _ in got}


async def _members(sessions: Any) -> dict[tuple[str, int | None], int]:
    async with sessions() as session:
        return {(st, sid): int(n) for st, sid, n in await session.execute(
            select(Customer.stage, Customer.home_store_id, func.count())
            .group_by(Customer.stage, Customer.home_store_id))}


async def test_the_rebuild_writes_todays_snapshot_once(sessions: Any, rows: BoardRows, chain: Any) -> None:
    await _rebuild(sessions)
    first = await _snapshot(sessions)
    assert first == await _members(sessions) and sum(first.values()) == 5
    assert local_date(NOW).isoformat() == "2026-11-24"  # 09:00 in China
    async with sessions() as session, session.begin():  # one more member (no home store) and one moves store
        session.add(Customer(customer_id="C900", name="新会员", phone="", home_store_id=None,
                             joined_at=NOW - timedelta(days=2), created_at=NOW, updated_at=NOW))
        moved = (await session.execute(select(Customer).where(Customer.customer_id == "C000"))).scalar_one()
        moved.home_store_id = chain.stores["S002"].id
    await _rebuild(sessions)
    second = await _snapshot(sessions)
    assert second == await _members(sessions) and sum(second.values()) == 6
    assert second != first and ("new", None) in second
    await _rebuild(sessions)
    assert await _snapshot(sessions) == second  # idempotent: same rows, no duplicates (NULL store included)


def _stage_chart(html: str) -> dict[str, Any] | None:
    m = re.search(r'<script type="application/json" id="chart-stage-days">(.*?)</script>', html, re.S)
    return None if m is None else json.loads(m.group(1))


def _per_day(chart: dict[str, Any]) -> dict[str, int]:
    days = chart["xAxis"]["data"]
    out: dict[str, int] = {}
    for s in chart["series"]:
        for d, v in zip(days, s["data"], strict=True):
            if v is not None:
                out[d] = out.get(d, 0) + int(v)
    return out


async def test_the_board_charts_stage_days_in_the_viewers_scope(
    client: Any, sessions: Any, rows: BoardRows, chain: Any
) -> None:
    sign_in(client, "m1")
    html = await (await client.get("/console/customers")).text()
    assert _stage_chart(html) is None and "明天再来看趋势" in html  # no history yet: say what happens next
    await _rebuild(sessions)
    async with sessions() as session, session.begin():  # an earlier day, written by that day's rebuild
        session.add_all([CustomerStageDay(day=local_date(NOW) - timedelta(days=3), stage="dormant",
                                          store_id=chain.stores[code].id, members=n)
                         for code, n in (("S001", 4), ("S003", 7))])
    expected = {"m1": {"2026-11-21": 4, "2026-11-24": 3}, "sup2": {"2026-11-21": 7, "2026-11-24": 2},
                "admin": {"2026-11-21": 11, "2026-11-24": 5}}
    for user, days in expected.items():
        sign_in(client, user)
        resp = await client.get("/console/customers")
        assert resp.status == 200
        chart = _stage_chart(await resp.text())
        assert chart is not None, user
        assert _per_day(chart) == days, user
        assert {s["name"] for s in chart["series"]} >= {"新会员", "活跃会员", "沉睡会员"}
        assert all(s.get("stack") == "stages" for s in chart["series"])
    resp = await client.get("/console/customers?from=2026-11-22&to=2026-11-24")
    chart = _stage_chart(await resp.text())
    assert chart is not None and _per_day(chart) == {"2026-11-24": 5}  # the date filter applies
