"""Rebuilding every lifecycle stage plus five rule segments over 1,000,000 members and 10,000,000 purchases, against
one plain SQL GROUP BY customer over the last 365 days of purchases in the same run (medians of --repeat runs);
peak RSS; and the POS sale path with and without a customer_id.

    python bench/bench_segments.py [--members 1000000] [--purchases 10000000] [--repeat 3] [--pg URL]
    python bench/bench_segments.py --sale-path --members 20000 --purchases 100000 [--sales 1000] [--pg URL]

--sale-path populates, then measures only the sale path (no rebuilds): the quick check of the +20% goal.

--pg postgresql+asyncpg://postgres@127.0.0.1:5432/<empty db> runs it on PostgreSQL (the tables are created there).
Goals: rebuild <= 3x the plain scan; peak RSS <= 500 MB; a sale with a member costs <= 20% more than one without.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import resource
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Index, Table, UniqueConstraint, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.schema import CreateTable

import models
from bot.config import DatabaseSettings
from bot.config_customers import CustomersSettings, SegmentConfig
from bot.db import make_engine, session_factory
from models.base import Base
from models.customer_sales import customer_sale
from models.segment import rebuild_all
from models.stock import SaleLineIn, book_sale

NOW = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
_ = models
SEGMENTS = (
    SegmentConfig(key="high_potential", name="高潜", rule={"all": [
        {"metric": "purchases", "days": 30, "op": ">=", "value": 3},
        {"metric": "avg_basket", "days": 30, "op": ">", "times_mean": 1.5}]}),
    SegmentConfig(key="dormant", name="沉睡", rule={"stage": "dormant"}),
    SegmentConfig(key="vip_lapsed", name="VIP 久未到店", rule={"all": [
        {"tag": "vip"}, {"metric": "days_since_purchase", "op": ">=", "value": 30}]}),
    SegmentConfig(key="frequent", name="常客", rule={"metric": "purchases", "days": 90, "op": ">=", "value": 4}),
    SegmentConfig(key="browsers", name="只逛不买", rule={"all": [
        {"metric": "views", "days": 30, "op": ">=", "value": 1},
        {"not": {"metric": "purchases", "days": 30, "op": ">=", "value": 1}}]}),
)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def ts(pg: bool, seconds_expr: str) -> str:
    """SQL for NOW minus `seconds_expr` seconds, stored the way UTCDateTime stores it on each backend."""
    if pg:
        return f"(TIMESTAMP '2026-11-24 02:00:00' - make_interval(secs => {seconds_expr}))"
    return f"(datetime('2026-11-24 02:00:00', '-' || ({seconds_expr}) || ' seconds') || '.000000')"


def series(pg: bool, n: str) -> str:
    if pg:
        return f"(SELECT generate_series(CAST(1 AS BIGINT), {n}) AS i) n"
    return f"(WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n}) SELECT i FROM s) n"


BULK = ("customers", "customer_tags", "customer_purchases", "customer_events")


async def create_bare(conn: AsyncConnection) -> None:
    """Every table; the bulk ones without their indexes and unique constraints (built once after loading, by a
    sort, instead of row by row while 10M rows go in)."""
    for table in Base.metadata.sorted_tables:  # in FK order
        if table.name not in BULK:
            await conn.run_sync(lambda c, t=table: t.create(c))
            continue
        ddl = str(CreateTable(table).compile(conn.sync_connection))
        await conn.execute(text(re.sub(r",\s*CONSTRAINT uq_\w+ UNIQUE \([^)]*\)", "", ddl)))


async def index_bulk(conn: AsyncConnection) -> None:
    for name in BULK:
        table: Table = Base.metadata.tables[name]
        for uq in table.constraints:
            if isinstance(uq, UniqueConstraint):
                cols = ", ".join(c.name for c in uq.columns)
                await conn.execute(text(f"CREATE UNIQUE INDEX {uq.name} ON {name} ({cols})"))
        for idx in table.indexes:
            assert isinstance(idx, Index)
            await conn.run_sync(lambda c, i=idx: i.create(c))


async def populate(engine: AsyncEngine, members: int, purchases: int) -> None:
    pg = engine.dialect.name == "postgresql"
    async with engine.begin() as conn:
        await create_bare(conn)
        if pg:
            await conn.execute(text("SET LOCAL session_replication_role = replica"))  # no FK triggers while loading
        await conn.execute(text("INSERT INTO regions (id, code, name) VALUES (1, 'R1', 'R1')"))
        for i in range(1, 11):
            await conn.execute(text("INSERT INTO stores (id, code, name, region_id, timezone) "
                                    f"VALUES ({i}, 'S{i:03d}', '店{i}', 1, 'Asia/Shanghai')"))
        await conn.execute(text("INSERT INTO skus (id, code, name) VALUES (1, 'A001', '商品')"))
        await conn.execute(text("INSERT INTO stock_levels (store_id, sku_id, on_hand, safety_stock) "
                                "SELECT id, 1, 1000000, 0 FROM stores"))
        # joined up to 700 days ago; a tenth tagged vip
        await conn.execute(text(
            "INSERT INTO customers (id, customer_id, name, phone, phone_tail, home_store_id, joined_at, stage, "
            "purchases_total, spend_total, created_at, updated_at) "
            f"SELECT i, 'C' || i, '', '', '', i % 10 + 1, {ts(pg, '(i % 700) * 86400')}, 'new', 0, 0, "
            f"{ts(pg, '0')}, {ts(pg, '0')} FROM {series(pg, ':n')}"), {"n": members})
        await conn.execute(text(f"INSERT INTO customer_tags (customer_pk, tag) SELECT i, 'vip' FROM {series(pg, ':n')} "
                                "WHERE i % 10 = 0"), {"n": members})
        # purchases over 400 days in the order they happened (POS sales arrive in time order, so the newest are
        # together at the end of the table, as in production); members hit unevenly (a few heavy buyers, many
        # occasional)
        step = 1_000_000
        for start in range(0, purchases, step):
            k = min(step, purchases - start)
            who = f"((({start} + i) * 7919) % (CASE WHEN ({start} + i) % 3 = 0 THEN {max(members // 20, 1)} " \
                  f"ELSE {members} END)) + 1"
            await conn.execute(text(
                "INSERT INTO customer_purchases (customer_pk, sale_id, store_id, at, amount) "
                f"SELECT {who}, 'B' || ({start} + i), ({start} + i) % 10 + 1, "
                f"{ts(pg, f'CAST({purchases} - ({start} + i) AS BIGINT) * {400 * 86400} / {purchases}')}, "
                f"10 + (({start} + i) * 13) % 200 FROM {series(pg, ':k')}"), {"k": k})
        await conn.execute(text(
            "INSERT INTO customer_events (event_id, customer_pk, type, at, created_at) "
            f"SELECT 'E' || i, (i * 104729) % :m + 1, 'view', {ts(pg, '(i % 60) * 86400')}, {ts(pg, '0')} "
            f"FROM {series(pg, ':n')}"), {"n": purchases // 10, "m": members})
        await conn.execute(text(
            "UPDATE customers SET last_purchase_at = t.m, purchases_total = t.n, spend_total = t.s FROM "
            "(SELECT customer_pk, MAX(at) AS m, COUNT(*) AS n, SUM(amount) AS s FROM customer_purchases "
            "GROUP BY customer_pk) t WHERE t.customer_pk = customers.id"))
        await index_bulk(conn)
        if pg:
            for table in ("customers", "customer_purchases", "customer_events", "customer_tags"):
                await conn.execute(text(f"ANALYZE {table}"))
        else:
            await conn.execute(text("ANALYZE"))


async def timed(label: str, repeat: int, fn: Any) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = await fn()
        times.append(time.perf_counter() - t0)
    took = statistics.median(times)
    print(f"{label}: {took:.2f} s (median of {', '.join(f'{t:.2f}' for t in times)})")
    return took, out


async def run(url: str, members: int, purchases: int, repeat: int, sales: int = 1000,
              sale_path_only: bool = False) -> None:
    engine = make_engine(DatabaseSettings(url=url))
    t0 = time.perf_counter()
    await populate(engine, members, purchases)
    print(f"populated {members:,} members, {purchases:,} purchases, {purchases // 10:,} views "
          f"in {time.perf_counter() - t0:.0f} s ({engine.dialect.name})")
    sessions = session_factory(engine)
    if sale_path_only:
        await sale_path(sessions, sales)
        await engine.dispose()
        return
    cut = (NOW - timedelta(days=365)).replace(tzinfo=None)

    async def scan() -> int:
        async with sessions() as s:
            return int((await s.execute(text(
                # SUM(t.s) keeps the per-customer sums live: with COUNT(*) alone PostgreSQL drops them unread
                "SELECT COUNT(*), SUM(t.s) FROM (SELECT customer_pk, COUNT(*) AS n, SUM(amount) AS s "
                "FROM customer_purchases WHERE at >= :c GROUP BY customer_pk) t"), {"c": cut})).first()[0])

    async def rebuild() -> dict[str, int | str]:
        async with sessions() as s, s.begin():
            return await rebuild_all(s, CustomersSettings(), SEGMENTS, NOW)

    await scan()  # warm the cache the same way for both
    base, buyers = await timed("plain GROUP BY customer over 365 days", repeat, scan)
    await timed("first rebuild (every member's figures, stage and segments written)", 1, rebuild)
    took, counts = await timed("rebuild: every stage + 5 rule segments (steady state)", repeat, rebuild)
    print(f"  {buyers:,} members bought in 365 days; segments {counts}")
    print(f"  rebuild = {took / base:.2f}x the plain scan (goal <= 3x)")
    await sale_path(sessions)
    print(f"peak RSS: {rss_mb():.0f} MB (goal <= 500 MB)")
    await engine.dispose()


async def sale_path(sessions: Any, n: int = 1000) -> None:
    """The POS webhook's database work per sale (book one line), without and with a member; interleaved."""
    spent = {False: 0.0, True: 0.0}
    cpu = {False: 0.0, True: 0.0}  # this process's CPU: on SQLite the database work is in it too
    cfg = CustomersSettings()
    for i in range(2 * n):
        member = bool(i % 2)
        t0, c0 = time.perf_counter(), time.process_time()
        async with sessions() as s, s.begin():
            await book_sale(s, sale_id=f"BENCH-{i}", store_code=f"S{i % 10 + 1:03d}", sold_at=NOW, now=NOW,
                            lines=[SaleLineIn("A001", 1, Decimal(25))], customer_id=f"C{i + 1}" if member else None)
            if member:
                await customer_sale(s, sale_id=f"BENCH-{i}", store_id=i % 10 + 1, sold_at=NOW, total=Decimal(25),
                                    customer_id=f"C{i + 1}", coupon_code=None, now=NOW, cfg=cfg)
        spent[member] += time.perf_counter() - t0
        cpu[member] += time.process_time() - c0
    plain, with_member = 1000 * spent[False] / n, 1000 * spent[True] / n
    print(f"sale path: {plain:.2f} ms without a member, {with_member:.2f} ms with one "
          f"(+{100 * (with_member / plain - 1):.0f}%, goal <= 20%); bench process CPU {1000 * cpu[False] / n:.2f} / "
          f"{1000 * cpu[True] / n:.2f} ms (+{100 * (cpu[True] / cpu[False] - 1):.0f}%)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--purchases", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pg", default="", help="an empty PostgreSQL database URL (postgresql+asyncpg://...)")
    parser.add_argument("--sale-path", action="store_true", help="measure only the sale path (no rebuilds)")
    parser.add_argument("--sales", type=int, default=1000, help="sales each way in the sale path")
    args = parser.parse_args()
    if args.pg:
        asyncio.run(run(args.pg, args.members, args.purchases, max(1, args.repeat), args.sales, args.sale_path))
        return
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}", args.members, args.purchases,
                        max(1, args.repeat), args.sales, args.sale_path))


if __name__ == "__main__":
    main()
