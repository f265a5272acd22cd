"""POS sales over HTTP: the real `storebot serve` against a bare aiohttp handler doing the same inserts in plain SQL.

Both servers run as their own processes on loopback; this process posts signed 3-line sales
(`POST /api/pos/sales`, `X-Storebot-Signature`) at CONCURRENCY in flight. The bare handler checks the HMAC,
parses the JSON and, in one transaction per sale on the raw driver (aiosqlite / asyncpg, no SQLAlchemy), looks
up the store and the SKUs, inserts the sale (ON CONFLICT DO NOTHING), its lines, and per line updates the stock
level and inserts the stock move. The real one does the same through models.stock.book_sale, and re-checks the
alerts of the pairs it touched in the same transaction. Each runs on SQLite (a file) and on PostgreSQL (a
database of its own, created and dropped here); rounds alternate the servers, and the ratio is per round.

Run from the repository root: python bench/bench_pos.py [--sales 1000] [--concurrency 8] [--rounds 3]
[--db sqlite,postgresql] [--pg-url postgresql+asyncpg://postgres@127.0.0.1:5432/test]
Goal: the real server's sales/s ≥ 50% of the bare handler's, on both databases.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, insert, select

from bench.bench_callback import (
    AES_KEY,
    CORP,
    TOKEN,
    create_pg_database,
    drop_pg_database,
    free_port,
    reader,
    stop,
    wait_up,
)
from bot.config import DatabaseSettings
from bot.db import make_engine, upgrade
from models.base import Base
from models.catalog import Sku
from models.org import Region, Store
from models.stock import Sale, StockLevel, StockMove

SECRET = "bench-pos-secret"
PATH = "/api/pos/sales"
STORES, SKUS = 20, 500


async def prepare_db(url: str) -> None:
    """The schema and a chain of STORES stores x SKUS SKUs, 1,000,000 on hand each (no sale runs it out)."""
    engine = make_engine(DatabaseSettings(url=url))
    await upgrade(engine)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
        await conn.execute(insert(Region), [{"id": 1, "code": "R1", "name": "R1"}])
        await conn.execute(insert(Store), [
            {"id": i, "code": f"S{i:03d}", "name": f"店{i}", "region_id": 1, "timezone": "Asia/Shanghai"}
            for i in range(1, STORES + 1)
        ])
        await conn.execute(insert(Sku), [
            {"id": k, "code": f"K{k:04d}", "barcode": f"69{k:011d}", "name": f"商品{k}"} for k in range(1, SKUS + 1)
        ])
        await conn.execute(insert(StockLevel), [
            {"store_id": s, "sku_id": k, "on_hand": 1_000_000, "safety_stock": 5}
            for s in range(1, STORES + 1) for k in range(1, SKUS + 1)
        ])
    await engine.dispose()


def sales(n: int, tag: str) -> list[bytes]:
    rnd = random.Random(f"{tag}-{n}")
    sold_at = datetime.now(UTC).replace(microsecond=0).isoformat()
    out = []
    for i in range(n):
        skus = rnd.sample(range(1, SKUS + 1), 3)
        out.append(json.dumps({
            "sale_id": f"{tag}-{i}", "store": f"S{rnd.randint(1, STORES):03d}", "sold_at": sold_at,
            "lines": [{"sku": f"K{k:04d}", "qty": rnd.randint(1, 3), "unit_price": 12.5} for k in skus],
        }).encode())
    return out


def sign(body: bytes) -> str:
    return "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


# --- the bare handler -------------------------------------------------------------------------------------------

class BareSqlite:
    """One aiosqlite connection, writers queued on an asyncio.Lock (SQLite has one writer)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = asyncio.Lock()
        self.conn: Any = None

    async def start(self) -> None:
        import aiosqlite

        self.conn = await aiosqlite.connect(self.path, isolation_level=None)
        await self.conn.execute("PRAGMA journal_mode=WAL")
        await self.conn.execute("PRAGMA synchronous=NORMAL")

    async def book(self, sale: dict[str, Any]) -> bool:
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        sold_at = datetime.fromisoformat(sale["sold_at"]).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        c = self.conn
        async with self.lock:
            await c.execute("BEGIN IMMEDIATE")
            try:
                [[store_id]] = await c.execute_fetchall("SELECT id FROM stores WHERE code = ?", (sale["store"],))
                codes = [line["sku"] for line in sale["lines"]]
                marks = ", ".join("?" * len(codes))
                ids = dict(await c.execute_fetchall(
                    f"SELECT code, id FROM skus WHERE code IN ({marks}) OR barcode IN ({marks})", codes + codes))
                total = sum(line["qty"] * line["unit_price"] for line in sale["lines"])
                rows = await c.execute_fetchall(
                    "INSERT INTO sales (sale_id, store_id, sold_at, customer_id, total, created_at) "
                    "VALUES (?, ?, ?, NULL, ?, ?) ON CONFLICT (sale_id) DO NOTHING RETURNING id",
                    (sale["sale_id"], store_id, sold_at, str(total), now))
                if not rows:
                    await c.execute("ROLLBACK")
                    return False
                sale_pk = rows[0][0]
                await c.executemany(
                    "INSERT INTO sale_lines (sale_pk, sku_id, qty, unit_price) VALUES (?, ?, ?, ?)",
                    [(sale_pk, ids[line["sku"]], line["qty"], str(line["unit_price"])) for line in sale["lines"]])
                for line in sale["lines"]:
                    [[balance]] = await c.execute_fetchall(
                        "UPDATE stock_levels SET on_hand = on_hand - ?, last_sold_at = ?, last_moved_at = ? "
                        "WHERE store_id = ? AND sku_id = ? RETURNING on_hand",
                        (line["qty"], sold_at, sold_at, store_id, ids[line["sku"]]))
                    await c.execute(
                        "INSERT INTO stock_moves (store_id, sku_id, kind, qty, balance_after, ref, actor, created_at) "
                        "VALUES (?, ?, 'sale', ?, ?, ?, 'pos', ?)",
                        (store_id, ids[line["sku"]], -line["qty"], balance, f"sale:{sale['sale_id']}", sold_at))
                await c.execute("COMMIT")
            except BaseException:
                await c.execute("ROLLBACK")
                raise
        return True


class BarePostgres:
    """An asyncpg pool; PostgreSQL's row locks serialise what needs it."""

    def __init__(self, dsn: str, size: int) -> None:
        self.dsn, self.size = dsn, size
        self.pool: Any = None

    async def start(self) -> None:
        import asyncpg

        self.pool = await asyncpg.create_pool(self.dsn, min_size=self.size, max_size=self.size)

    async def book(self, sale: dict[str, Any]) -> bool:
        now = datetime.now(UTC).replace(tzinfo=None)
        sold_at = datetime.fromisoformat(sale["sold_at"]).astimezone(UTC).replace(tzinfo=None)
        async with self.pool.acquire() as c, c.transaction():
            store_id = await c.fetchval("SELECT id FROM stores WHERE code = $1", sale["store"])
            codes = [line["sku"] for line in sale["lines"]]
            ids = dict(await c.fetch("SELECT code, id FROM skus WHERE code = ANY($1) OR barcode = ANY($1)", codes))
            total = sum(line["qty"] * line["unit_price"] for line in sale["lines"])
            sale_pk = await c.fetchval(
                "INSERT INTO sales (sale_id, store_id, sold_at, customer_id, total, created_at) "
                "VALUES ($1, $2, $3, NULL, $4, $5) ON CONFLICT (sale_id) DO NOTHING RETURNING id",
                sale["sale_id"], store_id, sold_at, total, now)
            if sale_pk is None:
                return False
            await c.executemany(
                "INSERT INTO sale_lines (sale_pk, sku_id, qty, unit_price) VALUES ($1, $2, $3, $4)",
                [(sale_pk, ids[line["sku"]], line["qty"], line["unit_price"]) for line in sale["lines"]])
            for line in sorted(sale["lines"], key=lambda x: ids[x["sku"]]):  # a fixed lock order
                balance = await c.fetchval(
                    "UPDATE stock_levels SET on_hand = on_hand - $1, last_sold_at = $2, last_moved_at = $2 "
                    "WHERE store_id = $3 AND sku_id = $4 RETURNING on_hand",
                    line["qty"], sold_at, store_id, ids[line["sku"]])
                await c.execute(
                    "INSERT INTO stock_moves (store_id, sku_id, kind, qty, balance_after, ref, actor, created_at) "
                    "VALUES ($1, $2, 'sale', $3, $4, $5, 'pos', $6)",
                    store_id, ids[line["sku"]], -line["qty"], balance, f"sale:{sale['sale_id']}", sold_at)
        return True


def bare_server(port: int, url: str) -> None:
    """The baseline: HMAC, JSON, and the sale's rows in one transaction in plain SQL. Nothing else."""
    from decimal import Decimal

    booker: BareSqlite | BarePostgres = (
        BareSqlite(url.split("///", 1)[1]) if url.startswith("sqlite")
        else BarePostgres(url.replace("postgresql+asyncpg", "postgresql"), 8)
    )

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(request.headers.get("X-Storebot-Signature", "").encode(), expected.encode()):
            return web.json_response({"error": "signature"}, status=401)
        sale = json.loads(body, parse_float=Decimal)
        booked = await booker.book(sale)
        return web.json_response({"sale_id": sale["sale_id"], "duplicate": not booked})

    async def on_startup(_app: web.Application) -> None:
        await booker.start()

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.on_startup.append(on_startup)
    app.router.add_post(PATH, handle)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


# --- the load -----------------------------------------------------------------------------------------------------

@dataclass
class Run:
    name: str
    n: int
    seconds: float
    errors: int
    cpu_us: float  # server CPU per sale

    @property
    def rps(self) -> float:
        return self.n / self.seconds


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def post_all(url: str, bodies: list[bytes], concurrency: int) -> tuple[float, int]:
    queue = iter(bodies)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:

        async def client() -> int:
            bad = 0
            for body in queue:
                headers = {"X-Storebot-Signature": sign(body), "Content-Type": "application/json"}
                async with http.post(url, data=body, headers=headers) as resp:
                    answer = await resp.json()
                    bad += resp.status != 200 or answer.get("duplicate") is not False
            return bad

        started = time.perf_counter()
        errors = sum(await asyncio.gather(*(client() for _ in range(concurrency))))
        return time.perf_counter() - started, errors


async def measure(name: str, argv: list[str], port: int, bodies: list[bytes], args: argparse.Namespace) -> Run:
    log = Path(tempfile.gettempdir()) / f"bench-pos-{port}.log"  # the server's own errors, if it fails to start
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.DEVNULL, stderr=out)
    try:
        await wait_up(port, proc)
        url = f"http://127.0.0.1:{port}{PATH}"
        await post_all(url, bodies[:50], args.concurrency)  # warm up
        cpu_before = cpu_seconds(proc.pid)
        seconds, errors = await post_all(url, bodies[50:], args.concurrency)
        n = len(bodies) - 50
        return Run(name, n, seconds, errors, (cpu_seconds(proc.pid) - cpu_before) / n * 1e6)
    finally:
        await stop(proc)


def write_config(folder: Path, port: int, db_url: str) -> Path:
    cfg = folder / f"pos-{port}.toml"
    cfg.write_text(
        f'[server]\nport = {port}\ndata_dir = "{folder / "data"}"\n[database]\nurl = "{db_url}"\n'
        f'[wecom]\ncorp_id = "{CORP}"\nsecret = "x"\ntoken = "{TOKEN}"\nencoding_aes_key = "{AES_KEY}"\n'
        'api_base = "http://127.0.0.1:9"\n'
        f'[pos]\nwebhook_secret = "{SECRET}"\n[scheduler]\nenabled = false\n[inbox]\nworkers = 0\n'
        '[outbox]\nbackground = false\n',
        encoding="utf-8",
    )
    return cfg


async def check(url: str, expected_sales: int) -> str:
    engine = reader(url)
    try:
        async with engine.connect() as conn:
            n_sales = (await conn.execute(select(func.count()).select_from(Sale))).scalar_one()
            n_moves = (await conn.execute(select(func.count()).select_from(StockMove))).scalar_one()
    finally:
        await engine.dispose()
    ok = n_sales == expected_sales and n_moves == 3 * expected_sales
    return f"{n_sales} sales, {n_moves} moves ({'as expected' if ok else f'EXPECTED {expected_sales} sales'})"


async def main(args: argparse.Namespace) -> None:
    dbs = [d.strip() for d in args.db.split(",") if d.strip()]
    runs: list[Run] = []
    checks: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for db in dbs:
            url = (f"sqlite+aiosqlite:///{folder / 'pos.db'}" if db == "sqlite"
                   else await create_pg_database(args.pg_url))
            try:
                await prepare_db(url)
                booked = 0
                for r in range(args.rounds):
                    for kind in ("bare", "real"):
                        bodies = sales(args.sales + 50, f"{db}-{kind}-{r}")
                        port = free_port()
                        argv = ([sys.executable, __file__, "--bare-server", str(port), url] if kind == "bare" else
                                [sys.executable, "-m", "bot", "serve", "--config",
                                 str(write_config(folder, port, url))])
                        runs.append(await measure(f"{db}, {kind}", argv, port, bodies, args))
                        booked += len(bodies)
                checks[db] = await check(url, booked)
            finally:
                if db != "sqlite":
                    await drop_pg_database(args.pg_url, url)
    print(f"\nPOS sales over loopback: {args.sales} signed 3-line sales at concurrency {args.concurrency} per run; "
          f"{STORES} stores x {SKUS} SKUs; {os.cpu_count()} CPUs; {args.rounds} rounds")
    print(f"{'server':20} {'sales/s':>8} {'ms/sale':>8} {'cpu us/sale':>11} {'errors':>6}")
    for run in runs:
        print(f"{run.name:20} {run.rps:8.0f} {1000 / run.rps:8.2f} {run.cpu_us:11.0f} {run.errors:6d}")
    for db in dbs:
        bares = [r for r in runs if r.name == f"{db}, bare"]
        reals = [r for r in runs if r.name == f"{db}, real"]
        ratios = [real.rps / bare.rps for real, bare in zip(reals, bares, strict=True)]
        cpu = [bare.cpu_us / real.cpu_us for real, bare in zip(reals, bares, strict=True)]
        ratio = statistics.median(ratios)
        print(f"{db}: real {', '.join(f'{x:.0%}' for x in ratios)} of bare → median {ratio:.0%} "
              f"(goal ≥ 50%: {'met' if ratio >= 0.5 else 'MISSED'}); bare's CPU per sale is "
              f"{statistics.median(cpu):.0%} of the real one's; database: {checks[db]}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sales", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--db", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    parser.add_argument("--pg-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--bare-server", nargs=2, metavar=("PORT", "URL"), help=argparse.SUPPRESS)
    ns = parser.parse_args()
    if ns.bare_server:
        bare_server(int(ns.bare_server[0]), ns.bare_server[1])
    else:
        asyncio.run(main(ns))
