"""The console's inventory board for one region of 200 stores x 5,000 SKUs (1M stock levels) against one plain
SQL aggregate over the same rows, on SQLite and PostgreSQL (medians of --repeat runs after one warm-up each).

    python bench/bench_boards.py [--stores 200] [--skus 5000] [--repeat 5] [--db sqlite,postgresql]
                                 [--pg-url postgresql+asyncpg://postgres@127.0.0.1:5432/test]

A second region of --other-stores stores holds rows the board must leave out. The board is
models.boards.inventory.inventory_board for a supervisor's region (scope = that region's stores): negative,
below-safety and no-movement totals with their most urgent rows, in transit, pending counts, the ledger and
accuracy. The plain aggregate is `SELECT count(*), sum(on_hand) FROM stock_levels WHERE store_id IN (...)`.
Goal: the board <= 2x the plain aggregate on each database.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

import models
from bench.bench_callback import create_pg_database, drop_pg_database
from bot.config import DatabaseSettings
from bot.db import make_engine, session_factory
from models.base import Base
from models.boards.filters import Filters, select_stores
from models.boards.inventory import inventory_board

NOW = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
_ = models


def _series(dialect: str, n: str) -> str:
    if dialect == "postgresql":
        return f"generate_series(1, {n}) AS n(i)"
    return f"(WITH RECURSIVE q(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM q WHERE i < {n}) SELECT i FROM q) AS n"


async def populate(engine: AsyncEngine, stores: int, other: int, skus: int) -> None:
    d = engine.dialect.name
    fmt = "format('%s%s', {p}, lpad(i::text, 5, '0'))" if d == "postgresql" else "printf('{p}' || '%05d', i)"

    def code(prefix: str) -> str:
        return fmt.format(p=f"'{prefix}'") if d == "postgresql" else fmt.format(p=prefix)

    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
        await conn.execute(text("INSERT INTO regions (id, code, name) VALUES (1, 'R1', '华东区'), (2, 'R2', '华南区')"))
        await conn.execute(text(
            f"INSERT INTO stores (id, code, name, region_id, timezone) SELECT i, {code('S')}, {code('店')}, "
            f"CASE WHEN i <= {stores} THEN 1 ELSE 2 END, 'Asia/Shanghai' FROM {_series(d, str(stores + other))}"))
        await conn.execute(text(
            f"INSERT INTO skus (id, code, name, category) SELECT i, {code('K')}, {code('商品')}, "
            f"CASE i % 4 WHEN 0 THEN '饮料' WHEN 1 THEN '零食' WHEN 2 THEN '速食' ELSE '日用' END "
            f"FROM {_series(d, str(skus))}"))
        # a deterministic mix: ~1% negative, ~4% under the line, ~5% not sold for two weeks, the rest healthy
        old, recent = "'2026-11-10 00:00:00'", "'2026-11-24 00:00:00'"
        if d == "postgresql":
            old, recent = old + "::timestamp", recent + "::timestamp"
        await conn.execute(text(
            "INSERT INTO stock_levels (store_id, sku_id, on_hand, safety_stock, last_sold_at, last_moved_at) "
            "SELECT s.id, k.id, "
            "CASE WHEN (s.id * 7 + k.id * 13) % 100 = 0 THEN -2 "
            "     WHEN (s.id * 7 + k.id * 13) % 100 < 5 THEN 3 ELSE 40 END, 10, "
            f"CASE WHEN (s.id * 11 + k.id * 3) % 20 = 0 THEN {old} ELSE {recent} END, {recent} "
            "FROM stores s CROSS JOIN skus k"))
    async with engine.connect() as conn:
        if d == "postgresql":
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE"))
        else:
            await conn.execute(text("ANALYZE"))
            await conn.commit()


async def timed(fn: Callable[[], Awaitable[object]], repeat: int) -> tuple[float, list[float], object]:
    result = await fn()  # warm-up: page cache, plan cache, connection
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = await fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, result


async def measure(url: str, stores: int, other: int, skus: int, repeat: int) -> None:
    engine = make_engine(DatabaseSettings(url=url))
    t0 = time.perf_counter()
    await populate(engine, stores, other, skus)
    print(f"[{engine.dialect.name}] populated {(stores + other) * skus:,} stock levels "
          f"({stores * skus:,} in the region) in {time.perf_counter() - t0:.1f} s")
    sessions = session_factory(engine)
    filters = Filters(region="R1", date_from=date(2026, 10, 26), date_to=date(2026, 11, 24))
    async with sessions() as s:
        sel = await select_stores(s, None, filters)
    ids = ",".join(str(i) for i in sorted(sel.ids or ()))

    async def plain() -> object:
        async with sessions() as s:
            return (await s.execute(text(
                f"SELECT count(*), sum(on_hand) FROM stock_levels WHERE store_id IN ({ids})"))).one()

    async def board() -> object:
        async with sessions() as s:
            scoped = await select_stores(s, frozenset(sel.ids or ()), filters)
            return await inventory_board(s, scoped, filters, now=NOW, no_movement_days=7, tolerance=0)

    base, base_runs, row = await timed(plain, repeat)
    took, runs, result = await timed(board, repeat)
    totals = getattr(result, "totals", {})
    db = engine.dialect.name
    print(f"[{db}] plain aggregate: {base:.3f} s ({row}); runs {', '.join(f'{t:.3f}' for t in base_runs)}")
    print(f"[{db}] inventory board: {took:.3f} s ({totals}); runs {', '.join(f'{t:.3f}' for t in runs)}")
    ratio = took / base
    print(f"[{engine.dialect.name}] ratio {ratio:.2f}x (goal <= 2x): {'met' if ratio <= 2 else 'MISSED'}")
    await engine.dispose()


async def run(args: argparse.Namespace) -> None:
    for db in args.db.split(","):
        if db == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                await measure(f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}", args.stores, args.other_stores,
                              args.skus, args.repeat)
        elif db == "postgresql":
            url = await create_pg_database(args.pg_url)
            try:
                await measure(url, args.stores, args.other_stores, args.skus, args.repeat)
            finally:
                await drop_pg_database(args.pg_url, url)
        else:
            raise SystemExit(f"--db: unknown database {db!r} (sqlite, postgresql)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--stores", type=int, default=200, help="stores in the measured region")
    parser.add_argument("--other-stores", type=int, default=20, help="stores in a second region, left out")
    parser.add_argument("--skus", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--pg-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
