"""Count proof: the rotating cycle-count list chosen by risk, and ticking lines off from the stock ledger."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.org import Staff
from models.stock import StockLevel, StockMove
from models.task import TaskCountLine, TaskInstance, complete, count_lines

NEVER = 10_000.0  # days since "never counted": sorts first
RISK_DAYS = 30  # discrepancies within this many days raise a SKU's risk
VELOCITY_DAYS = 7


def pick_skus(
    n: int, staleness: dict[int, float], discrepancies: dict[int, int], velocity: dict[int, int]
) -> list[int]:
    """Half the list (rounded up) goes to the SKUs longest since last counted or listed, so every SKU comes
    round within a cycle; the rest to the riskiest (recent discrepancies first, then sales velocity)."""
    skus = sorted(staleness)
    stale = sorted(skus, key=lambda s: (-staleness[s], s))[: (n + 1) // 2]
    rest = [s for s in skus if s not in set(stale)]
    risky = sorted(rest, key=lambda s: (-discrepancies.get(s, 0), -velocity.get(s, 0), -staleness[s], s))
    return stale + risky[: n - len(stale)]


async def choose_count_skus(
    session: AsyncSession, sizes: dict[int, int], now: datetime
) -> dict[int, list[int]]:
    """For each store id, the SKU ids of its next cycle-count list of `sizes[store]` items."""
    store_ids = list(sizes)
    last_seen: dict[int, dict[int, datetime | None]] = defaultdict(dict)
    disc: dict[int, dict[int, int]] = defaultdict(dict)
    vel: dict[int, dict[int, int]] = defaultdict(dict)
    for i in range(0, len(store_ids), 400):
        ids = store_ids[i : i + 400]
        levels = select(StockLevel.store_id, StockLevel.sku_id, StockLevel.last_counted_at).where(
            StockLevel.store_id.in_(ids)
        )
        for sid, sku, counted in (await session.execute(levels)).all():
            last_seen[sid][sku] = counted
        listed = (
            select(TaskCountLine.store_id, TaskCountLine.sku_id, func.max(TaskCountLine.listed_at))
            .where(TaskCountLine.store_id.in_(ids))
            .group_by(TaskCountLine.store_id, TaskCountLine.sku_id)
        )
        for sid, sku, at in (await session.execute(listed)).all():
            prev = last_seen[sid].get(sku)
            if sku in last_seen[sid] and (prev is None or (at is not None and at > prev)):
                last_seen[sid][sku] = at
        moves = (
            select(StockMove.store_id, StockMove.sku_id, StockMove.kind, func.count(), func.sum(StockMove.qty))
            .where(
                StockMove.store_id.in_(ids),
                StockMove.kind.in_(("count_adjustment", "sale")),
                StockMove.created_at >= now - timedelta(days=RISK_DAYS),
            )
            .group_by(StockMove.store_id, StockMove.sku_id, StockMove.kind)
        )
        for sid, sku, kind, n, qty in (await session.execute(moves)).all():
            if kind == "count_adjustment":
                disc[sid][sku] = int(n)
            else:
                vel[sid][sku] = -int(qty or 0)
    out: dict[int, list[int]] = {}
    for sid, n in sizes.items():
        staleness = {
            sku: NEVER if at is None else (now - at).total_seconds() / 86400 for sku, at in last_seen[sid].items()
        }
        out[sid] = pick_skus(n, staleness, disc[sid], vel[sid])
    return out


async def tick_counted_from_ledger(session: AsyncSession, now: datetime) -> list[int]:
    """Fallback for the 盘点 flow: a listed SKU whose stock level was counted after the task fired is ticked,
    and a task whose lines are all ticked completes. Returns the completed task ids."""
    stmt = (
        select(TaskCountLine, TaskInstance.fire_at, StockLevel.last_counted_at)
        .join(TaskInstance, TaskInstance.id == TaskCountLine.task_id)
        .join(StockLevel, (StockLevel.store_id == TaskCountLine.store_id) & (StockLevel.sku_id == TaskCountLine.sku_id))
        .where(
            TaskInstance.state == "open",
            TaskInstance.proof == "count",
            TaskCountLine.counted_at.is_(None),
            StockLevel.last_counted_at.is_not(None),
            StockLevel.last_counted_at >= TaskInstance.fire_at,
        )
    )
    touched: set[int] = set()
    for line, _fire, counted in (await session.execute(stmt)).all():
        line.counted_at = counted
        touched.add(line.task_id)
    await session.flush()
    done: list[int] = []
    for task_id in sorted(touched):
        task = await session.get(TaskInstance, task_id)
        lines = await count_lines(session, task_id)
        if task is None or task.state != "open" or any(ln.counted_at is None for ln in lines):
            continue
        user = await session.get(Staff, task.assignee_id)
        assert user is not None
        last = max(ln.counted_at for ln in lines if ln.counted_at is not None)
        await complete(session, task, user, last)
        done.append(task_id)
    return done
