"""The stock loop's effect per store: inventory accuracy, slow-moving share, emergency replenishments."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from models.count import accuracy
from models.org import Store
from models.stock import StockLevel
from models.transfer import count_emergency_replenishments


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
    emergencies = await count_emergency_replenishments(session, date_from, date_to)
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
