"""Import 100,000 stock rows (100 stores × 1,000 SKUs) into SQLite; print rows/s, peak RSS and a bare-insert baseline.

Run: python bench/bench_import.py [--stores 100] [--skus 1000] [--pg postgresql+asyncpg://postgres@127.0.0.1/test]
(--pg: the same import into a fresh PostgreSQL database made next to the one named, dropped afterwards.)
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import resource
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path

from bot.clock import SystemClock
from bot.config import DatabaseSettings
from bot.db import make_engine, session_factory, upgrade
from bot.demo.data import ean13
from bot.importing.importer import import_files


def write_files(folder: Path, stores: int, skus: int) -> tuple[list[Path], list[tuple[str, str, int, int]]]:
    store_codes = [f"S{i:04d}" for i in range(1, stores + 1)]
    sku_codes = [f"B{i:05d}" for i in range(1, skus + 1)]
    with (folder / "stores.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["code", "name", "region", "latitude", "longitude", "chat_id", "timezone"])
        w.writerows([c, f"门店{c}", f"区域{i % 5}", "31.2", "121.4", "", ""] for i, c in enumerate(store_codes))
    with (folder / "skus.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["code", "barcode", "name", "category", "unit", "price"])
        w.writerows([c, ean13(f"691{i:09d}"), f"商品{c}", "杂货", "件", "9.90"] for i, c in enumerate(sku_codes))
    rows = [(s, k, (i * 7 + j * 13) % 90 + 1, 5) for i, s in enumerate(store_codes) for j, k in enumerate(sku_codes)]
    with (folder / "stock.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["store", "sku", "on_hand", "safety_stock"])
        w.writerows(rows)
    return [folder / "stores.csv", folder / "skus.csv", folder / "stock.csv"], rows


async def timed_import(url: str, paths: list[Path]) -> float:
    engine = make_engine(DatabaseSettings(url=url))
    await upgrade(engine)
    try:
        start = time.perf_counter()
        reports = await import_files(session_factory(engine), paths, clock=SystemClock())
        elapsed = time.perf_counter() - start
    finally:
        await engine.dispose()
    for report in reports:
        print(f"  {report.summary()}")
    return elapsed


def baseline(db_path: Path, rows: list[tuple[str, str, int, int]]) -> float:
    """The floor: the same rows into a bare table with one plain executemany, no checks, no ledger."""
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE stock (store TEXT, sku TEXT, on_hand INTEGER, safety_stock INTEGER)")
    start = time.perf_counter()
    with conn:
        conn.executemany("INSERT INTO stock VALUES (?, ?, ?, ?)", rows)
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


async def _pg_database(base_url: str, name: str, *, drop: bool = False) -> str:
    import asyncpg

    conn = await asyncpg.connect(base_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' if drop else f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return f"{base_url.rpartition('/')[0]}/{name}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stores", type=int, default=100)
    parser.add_argument("--skus", type=int, default=1000)
    parser.add_argument("--pg", help="PostgreSQL URL to run against instead of SQLite")
    args = parser.parse_args()
    pg_name = f"storebot_bench_{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="storebot-bench-") as tmp:
        folder = Path(tmp)
        paths, rows = write_files(folder, args.stores, args.skus)
        url = f"sqlite+aiosqlite:///{folder / 'bench.db'}"
        if args.pg:
            url = asyncio.run(_pg_database(args.pg, pg_name))
        n = len(rows)
        print(f"first import into {url.partition(':')[0]} ({args.stores} stores, {args.skus} SKUs, {n} stock rows):")
        first = asyncio.run(timed_import(url, paths))
        print("second, identical import (must change nothing):")
        second = asyncio.run(timed_import(url, paths))
        print("third import, every on_hand changed (one import_adjustment move per row):")
        changed = folder / "changed"
        changed.mkdir()
        with (changed / "stock.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["store", "sku", "on_hand", "safety_stock"])
            w.writerows((s, k, on_hand + 3, safety) for s, k, on_hand, safety in rows)
        third = asyncio.run(timed_import(url, [changed / "stock.csv"]))
        if args.pg:
            asyncio.run(_pg_database(args.pg, pg_name, drop=True))
        floor = baseline(folder / "baseline.db", rows)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"import:      {first:6.2f} s  {n / first:10,.0f} rows/s  (goal: under 30 s)")
    print(f"re-import:   {second:6.2f} s  {n / second:10,.0f} rows/s")
    print(f"adjust all:  {third:6.2f} s  {n / third:10,.0f} rows/s")
    print(f"baseline:    {floor:6.2f} s  {n / floor:10,.0f} rows/s  (plain SQLite executemany, no ledger)")
    print(f"ratio:       import is {first / floor:.1f}× the bare insert")
    print(f"peak RSS:    {rss_mb:.0f} MB")


if __name__ == "__main__":
    main()
