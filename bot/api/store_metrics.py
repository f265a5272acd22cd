"""/api/metrics/stores: accuracy, slow-moving share and emergency replenishments per store and overall."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from aiohttp import web
from prometheus_client import Gauge
from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.api import ApiError, date_param
from bot.config import Settings
from bot.keys import DEPS
from models.count import accuracy
from models.org import Store
from models.stock import StockLevel
from models.transfer import count_emergency_replenishments

routes = web.RouteTableDef()


async def _emergencies(session: AsyncSession, date_from: datetime, date_to: datetime) -> dict[int, int]:
    return await count_emergency_replenishments(session, date_from, date_to)


async def store_metrics(
    session: AsyncSession, settings: Settings, *, now: datetime, date_from: datetime, date_to: datetime
) -> dict[str, object]:
    """The loop's effect per store code and overall; shares are None where there is nothing to divide."""
    counted = await accuracy(session, tolerance=settings.rules.accuracy_tolerance_units, date_from=date_from,
                             date_to=date_to)
    cutoff = now - timedelta(days=settings.rules.no_movement_days)
    slow = func.sum(case((func.coalesce(StockLevel.last_sold_at, StockLevel.last_moved_at) < cutoff, 1), else_=0))
    stocked = {
        store_id: (int(n_slow or 0), int(n))
        for store_id, n_slow, n in await session.execute(
            select(StockLevel.store_id, slow, func.count()).where(StockLevel.on_hand > 0)
            .group_by(StockLevel.store_id)
        )
    }
    emergencies = await _emergencies(session, date_from, date_to)
    stores = (await session.execute(select(Store.id, Store.code).order_by(Store.code))).all()
    out: dict[str, object] = {}
    totals = [0, 0, 0, 0, 0]
    for store_id, code in stores:
        ok, lines = counted.get(store_id, (0, 0))
        n_slow, n_stocked = stocked.get(store_id, (0, 0))
        n_emergency = emergencies.get(store_id, 0)
        out[code] = _view(ok, lines, n_slow, n_stocked, n_emergency)
        for i, v in enumerate((ok, lines, n_slow, n_stocked, n_emergency)):
            totals[i] += v
    return {"from": date_from.isoformat(), "to": date_to.isoformat(), "stores": out, "overall": _view(*totals)}


def _view(ok: int, lines: int, n_slow: int, n_stocked: int, n_emergency: int) -> dict[str, object]:
    return {
        "inventory_accuracy": round(ok / lines, 4) if lines else None, "counted_lines": lines,
        "slow_moving_share": round(n_slow / n_stocked, 4) if n_stocked else None, "skus_in_stock": n_stocked,
        "emergency_replenishments": n_emergency,
    }


@routes.get("/api/metrics/stores")
async def get_store_metrics(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    now = deps.clock.now()
    today = now.date()
    first = date_param(request, "from", today - timedelta(days=30))
    last = date_param(request, "to", today)
    if last < first:
        raise ApiError(400, "to: must not be before from")
    start = datetime.combine(first, time(), tzinfo=UTC)
    end = datetime.combine(last + timedelta(days=1), time(), tzinfo=UTC)  # "to" is inclusive
    async with deps.sessions() as session:
        view = await store_metrics(session, deps.config, now=now, date_from=start, date_to=end)
    return web.json_response(view)


async def refresh_store_gauges(session: AsyncSession, gauge: Gauge, settings: Settings, now: datetime) -> None:
    """/metrics: storebot_store_metric{store, metric} over the last 30 days (called from Metrics.refresh)."""
    view = await store_metrics(session, settings, now=now, date_from=now - timedelta(days=30), date_to=now)
    gauge.clear()
    per_store = view["stores"]
    assert isinstance(per_store, dict)
    for code, values in [*per_store.items(), ("_all", view["overall"])]:
        for metric in ("inventory_accuracy", "slow_moving_share", "emergency_replenishments"):
            value = values[metric]
            if value is not None:
                gauge.labels(code, metric).set(float(value))
