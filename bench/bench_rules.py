"""Rule evaluation over 1,000 stores x 1,000 SKUs (1M stock levels) on SQLite: seconds, peak RSS, and the
ratio to one plain SQL scan of the stock table in the same run (medians of --repeat runs, the first evaluation
excepted: it raises every alert, so it runs once).

    python bench/bench_rules.py [--stores 1000] [--skus 1000] [--repeat 5]

Goals: evaluation <= 10 s, <= 2x the plain scan, peak RSS <= 300 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import models
from bot.config import AlertSettings, DatabaseSettings, RulesSettings
from bot.db import make_engine, session_factory
from models.alert import evaluate, react
from models.base import Base
from models.stock import SaleLineIn, book_sale

NOW = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
_ = models


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def populate(url: str, stores: int, skus: int) -> None:
    engine = make_engine(DatabaseSettings(url=url))
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
        await conn.execute(text("INSERT INTO regions (id, code, name) VALUES (1, 'R1', 'R1')"))
        await conn.execute(text(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :k) "
            "INSERT INTO stores (id, code, name, region_id, timezone) "
            "SELECT i, printf('S%04d', i), printf('店%04d', i), 1, 'Asia/Shanghai' FROM n"), {"k": stores})
        await conn.execute(text(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :k) "
            "INSERT INTO skus (id, code, name) SELECT i, printf('K%05d', i), printf('商品%05d', i) FROM n"),
            {"k": skus})
        # a deterministic mix: ~1% negative, ~4% under the line, ~5% not sold for a week, the rest healthy
        await conn.execute(text(
            "INSERT INTO stock_levels (store_id, sku_id, on_hand, safety_stock, last_sold_at, last_moved_at) "
            "SELECT s.id, k.id, "
            "CASE WHEN (s.id * 7 + k.id * 13) % 100 = 0 THEN -2 "
            "     WHEN (s.id * 7 + k.id * 13) % 100 < 5 THEN 3 ELSE 40 END, 10, "
            "CASE WHEN (s.id * 11 + k.id * 3) % 20 = 0 THEN '2026-11-10 00:00:00.000000' "
            "     ELSE '2026-11-24 00:00:00.000000' END, '2026-11-24 00:00:00.000000' "
            "FROM stores s CROSS JOIN skus k"))
    await engine.dispose()


def _runs(times: list[float]) -> str:
    return ", ".join(f"{t:.3f}" for t in times)


async def run(stores: int, skus: int, repeat: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        t0 = time.perf_counter()
        await populate(url, stores, skus)
        print(f"populated {stores * skus:,} stock levels in {time.perf_counter() - t0:.1f} s")
        engine = make_engine(DatabaseSettings(url=url))
        sessions = session_factory(engine)
        rules, alerts = RulesSettings(), AlertSettings()

        async with sessions() as s:  # warm the page cache the same way for both
            await s.execute(text("SELECT COUNT(*) FROM stock_levels"))
        scans = []
        for _ in range(repeat):  # the machine is shared: the median of a few runs, each the same one scan
            t0 = time.perf_counter()
            async with sessions() as s:
                low = (await s.execute(text(
                    "SELECT COUNT(*) FROM stock_levels WHERE on_hand < safety_stock OR last_sold_at < :c"),
                    {"c": "2026-11-21 00:00:00"})).scalar_one()
            scans.append(time.perf_counter() - t0)
        scan = statistics.median(scans)
        print(f"plain scan of stock_levels: {scan:.3f} s ({low:,} rows matched; median of {_runs(scans)})")

        # the first evaluation raises every alert once, so it runs once; the steady state repeats like the scan
        for label, runs in (("first evaluation (raises every alert)", 1), ("steady state (nothing new)", repeat)):
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                async with sessions() as s, s.begin():
                    raised = await evaluate(s, rules=rules, alerts=alerts, now=NOW)
                times.append(time.perf_counter() - t0)
            took = statistics.median(times)
            how = f"; median of {_runs(times)}" if runs > 1 else ""
            print(f"{label}: {took:.3f} s, {len(raised):,} alerts raised, {took / scan:.2f}x the plain scan{how}")
        async with sessions() as s:
            n_open = (await s.execute(text("SELECT COUNT(*) FROM alerts WHERE open_key IS NOT NULL"))).scalar_one()
        print(f"open alerts: {n_open:,}")
        await sale_path(sessions, rules, alerts, stores, skus)
        print(f"peak RSS: {rss_mb():.0f} MB")
        await engine.dispose()


async def sale_path(sessions: async_sessionmaker[AsyncSession], rules: RulesSettings, alerts: AlertSettings,
                    stores: int, skus: int, n: int = 500) -> None:
    """What the POS webhook does per sale (book 3 lines + re-evaluate those pairs), on the full table."""
    t0 = time.perf_counter()
    for i in range(n):
        lines = [SaleLineIn(f"K{(i * 37 + j * 101) % skus + 1:05d}", 1, Decimal(1)) for j in range(3)]
        async with sessions() as s, s.begin():
            booked = await book_sale(s, sale_id=f"B-{i}", store_code=f"S{i % stores + 1:04d}", sold_at=NOW,
                                     lines=lines, customer_id=None, now=NOW)
            await react(s, rules=rules, alerts=alerts, now=NOW, pairs=list(booked.pairs))
    took = time.perf_counter() - t0
    print(f"sale path: {n} sales of 3 lines in {took:.2f} s = {1000 * took / n:.1f} ms each "
          f"({n / took:.0f} sales/s in one process)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--stores", type=int, default=1000)
    parser.add_argument("--skus", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5, help="runs of the plain scan and the steady state")
    args = parser.parse_args()
    asyncio.run(run(args.stores, args.skus, max(1, args.repeat)))


if __name__ == "__main__":
    main()
