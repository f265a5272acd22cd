"""Task generation at chain scale: 2,000 stores x 5 templates generated and their cards queued, in one pass.

A temporary SQLite file database (or --db URL) gets 2,000 stores in 10 regions, 2 staff and a manager per store,
20 SKUs stocked everywhere. Five templates fire at 09:00 store-local (one of them a count task that picks a
cycle-count list per store). The timed part is the scheduler's own path, handlers.task_gen.generate_due, at
09:00: instances inserted, count lists chosen, cards queued with jitter. A second pass (nothing left to create)
is timed too.

Run from the repository root: python bench/bench_tasks.py [--stores 2000] [--pg postgresql+asyncpg://.../db]
(--pg creates a throw-away database next to the one named and drops it afterwards).
Goal: the first pass <= 5 s on SQLite.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, insert, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import models
from bot.config import DatabaseSettings, settings_from_dict
from bot.db import make_engine, session_factory, upgrade
from handlers.task_gen import generate_due
from models.base import Base
from models.catalog import Sku
from models.org import Region, Staff, Store
from models.outbox import OutboundMessage
from models.stock import StockLevel
from models.task import TaskCountLine, TaskInstance

_ = models
BENCH_DB = "storebot_bench_tasks"
NINE_SHANGHAI = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
TEMPLATES = [
    {"key": "morning_check", "title": "晨检", "schedule": "0 9 * * *", "proof": "photo"},
    {"key": "display_photo", "title": "陈列拍照", "schedule": "0 9 * * *", "proof": "photo"},
    {"key": "cash_check", "title": "备用金核对", "schedule": "0 9 * * *", "proof": "confirm",
     "assignee_role": "manager"},
    {"key": "feedback", "title": "客流反馈", "schedule": "0 9 * * *", "proof": "text"},
    {"key": "cycle_count", "title": "循环盘点", "schedule": "0 9 * * *", "proof": "count", "count_skus": 5},
]


async def seed(url: str, stores: int) -> None:
    engine = make_engine(DatabaseSettings(url=url))
    await upgrade(engine)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
        await conn.execute(insert(Region), [{"code": f"R{r}", "name": f"区域{r}"} for r in range(10)])
        await conn.execute(insert(Store), [
            {"code": f"S{i:05d}", "name": f"门店{i}", "region_id": 1 + i % 10, "latitude": 31.2, "longitude": 121.4,
             "chat_id": f"chat-{i}", "timezone": "Asia/Shanghai"}
            for i in range(stores)
        ])
        people = []
        for i in range(stores):
            for role, n in (("manager", 1), ("staff", 2)):
                people += [{"userid": f"u{i}-{role}{k}", "name": f"员工{i}-{k}", "role": role, "store_id": i + 1,
                            "region_id": 1 + i % 10, "active": True} for k in range(n)]
        await conn.execute(insert(Staff), people)
        await conn.execute(insert(Sku), [{"code": f"A{k:03d}", "name": f"商品{k}"} for k in range(20)])
        await conn.execute(insert(StockLevel), [
            {"store_id": s + 1, "sku_id": k + 1, "on_hand": 20, "safety_stock": 5}
            for s in range(stores) for k in range(20)
        ])
    await engine.dispose()


async def _pg_database(base_url: str, verb: str) -> str:
    import asyncpg

    conn = await asyncpg.connect(base_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(f"{verb} DATABASE {BENCH_DB}" + (" WITH (FORCE)" if verb == "DROP" else ""))
    finally:
        await conn.close()
    return f"{base_url.rpartition('/')[0]}/{BENCH_DB}"


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stores", type=int, default=2000)
    parser.add_argument("--pg", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = await _pg_database(args.pg, "CREATE") if args.pg else f"sqlite+aiosqlite:///{tmp}/bench.db"
        await seed(url, args.stores)
        settings = settings_from_dict({"database": {"url": url}, "tasks": TEMPLATES})
        engine = make_engine(DatabaseSettings(url=url))
        sessions = session_factory(engine)
        t0 = time.perf_counter()
        async with sessions() as session, session.begin():
            created = await generate_due(session, settings, NINE_SHANGHAI)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        async with sessions() as session, session.begin():
            again = await generate_due(session, settings, NINE_SHANGHAI)
        second = time.perf_counter() - t0
        async with sessions() as session:
            instances, cards, lines = [
                await session.scalar(select(func.count()).select_from(model))
                for model in (TaskInstance, OutboundMessage, TaskCountLine)
            ]
        await engine.dispose()
        if args.pg:
            await _pg_database(args.pg, "DROP")
    print(f"stores={args.stores} templates={len(TEMPLATES)} db={url.split(':')[0]}")
    print(f"first pass: {len(created)} instances, {cards} cards queued, {lines} count lines in {first:.2f} s "
          f"({len(created) / first:.0f} instances/s)")
    print(f"second pass (idempotent): {len(again)} created in {second:.2f} s; instances in db: {instances}")
    print(f"goal <= 5 s: {'met' if first <= 5 else 'NOT met'}")


if __name__ == "__main__":
    asyncio.run(main())
