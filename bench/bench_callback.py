"""Callback ack throughput and latency of the real `storebot serve` against a bare aiohttp handler that only decrypts.

Both servers run as their own processes on loopback; this process is the load generator (WeCom). For each server:
a closed-loop run (REQUESTS requests at CONCURRENCY in flight) gives throughput and p50/p99, and a paced run
(RATE req/s for SECONDS) gives the p99 WeCom would see at a steady load. The real server runs on a SQLite file
database and on PostgreSQL (a database of its own, created and dropped here), once with the inbox worker off
(accept only) and once with one worker processing every event. With the worker, the bench waits after each run
until every event is done (the backlog the burst left, drained at the worker's own pace) and checks that none
is left pending or failed. The outbox worker is off (bench_outbox.py measures it): replies stay queued.

Run from the repository root: python bench/bench_callback.py [--requests 2000] [--concurrency 20] [--rate 200]
[--db sqlite,postgresql] [--pg-url postgresql+asyncpg://postgres@127.0.0.1:5432/test]
Goals: real throughput ≥ 50% of bare; real p99 < 50 ms at 200 req/s, with and without the worker.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import secrets
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bot.config import DatabaseSettings
from bot.db import make_engine, session_factory, upgrade
from bot.wecom.crypto import CallbackCrypto
from models.base import Base
from models.inbox import InboundEvent

TOKEN, AES_KEY, CORP = "benchToken", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wwbenchcorp"
PATH = "/wecom/callback"
_msg_ids = itertools.count(8_000_000_000_000_000_001)
TEXT = (
    "<xml><ToUserName><![CDATA[{corp}]]></ToUserName><FromUserName><![CDATA[s1]]></FromUserName>"
    "<CreateTime>{t}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[帮助]]></Content>"
    "<MsgId>{msgid}</MsgId><AgentID>1000002</AgentID></xml>"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def bare_server(port: int) -> None:
    """The baseline: read the body, check the signature, decrypt, answer 200. Nothing else."""
    crypto = CallbackCrypto(TOKEN, AES_KEY, CORP)

    async def handle(request: web.Request) -> web.Response:
        q = request.query
        crypto.decrypt(q["msg_signature"], q["timestamp"], q["nonce"], await request.read())
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post(PATH, handle)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def requests(n: int) -> list[tuple[dict[str, str], bytes]]:
    crypto = CallbackCrypto(TOKEN, AES_KEY, CORP)
    out = []
    for _ in range(n):
        t, nonce = int(time.time()), secrets.token_hex(5)
        body = crypto.encrypt(TEXT.format(corp=CORP, t=t, msgid=next(_msg_ids)), nonce, t)
        sig = body.split("<MsgSignature><![CDATA[", 1)[1].split("]]>", 1)[0]
        out.append(({"msg_signature": sig, "timestamp": str(t), "nonce": nonce}, body.encode()))
    return out


@dataclass
class Result:
    n: int
    seconds: float
    latencies: list[float]
    errors: int

    @property
    def rps(self) -> float:
        return self.n / self.seconds

    def pct(self, p: float) -> float:
        xs = sorted(self.latencies)
        return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] * 1000 if xs else float("nan")


async def one(http: aiohttp.ClientSession, url: str, req: tuple[dict[str, str], bytes], lat: list[float]) -> bool:
    started = time.perf_counter()
    async with http.post(url, params=req[0], data=req[1]) as resp:
        await resp.read()
        lat.append(time.perf_counter() - started)
        return resp.status == 200


async def closed_loop(url: str, n: int, concurrency: int) -> Result:
    reqs, errors = requests(n), 0
    lat: list[float] = []
    queue = iter(reqs)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:

        async def client() -> int:
            bad = 0
            for req in queue:
                bad += not await one(http, url, req, lat)
            return bad

        started = time.perf_counter()
        errors = sum(await asyncio.gather(*(client() for _ in range(concurrency))))
        return Result(n, time.perf_counter() - started, lat, errors)


async def paced(url: str, rate: float, seconds: float) -> Result:
    n = int(rate * seconds)
    reqs = requests(n)
    lat: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as http:
        started = time.perf_counter()
        tasks = []
        for i, req in enumerate(reqs):
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(http, url, req, lat)))
        oks = await asyncio.gather(*tasks)
        return Result(n, time.perf_counter() - started, lat, oks.count(False))


async def wait_up(port: int, proc: asyncio.subprocess.Process | None = None) -> None:
    async with asyncio.timeout(300), aiohttp.ClientSession() as http:  # a loaded machine imports slowly
        while True:
            if proc is not None and proc.returncode is not None:
                raise SystemExit(f"the server on port {port} exited with {proc.returncode} before answering")
            try:
                async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                    await r.read()
                    return
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.1)


async def create_pg_database(admin_url: str) -> str:
    """A fresh database next to admin_url's; returns its URL."""
    name = f"storebot_bench_{secrets.token_hex(4)}"
    engine = make_engine(DatabaseSettings(url=admin_url))
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f"CREATE DATABASE {name}"))
    await engine.dispose()
    return admin_url.rsplit("/", 1)[0] + "/" + name


async def drop_pg_database(admin_url: str, url: str) -> None:
    engine = make_engine(DatabaseSettings(url=admin_url))
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)"))
    await engine.dispose()


def reader(url: str) -> AsyncEngine:
    """A plain engine for looking: make_engine's BEGIN IMMEDIATE would take SQLite's write lock from the server."""
    return create_async_engine(url)


async def inbox_counts(url: str) -> dict[str, int]:
    engine = reader(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(select(InboundEvent.state, func.count()).group_by(InboundEvent.state))
            return {str(state): int(n) for state, n in rows.all()}
    finally:
        await engine.dispose()


async def wait_drained(url: str, limit: float = 300.0) -> float:
    """Seconds until no inbox row is pending (the worker has processed every event so far)."""
    started = time.perf_counter()
    pending = select(func.count()).select_from(InboundEvent).where(InboundEvent.state == "pending")
    engine = reader(url)
    try:
        async with asyncio.timeout(limit), engine.connect() as conn:
            while True:
                if not (await conn.execute(pending)).scalar_one():
                    return time.perf_counter() - started
                await conn.rollback()  # a fresh snapshot next time
                await asyncio.sleep(0.05)
    finally:
        await engine.dispose()


async def prepare_db(url: str) -> None:
    from tests.factories import seed_chain

    engine = make_engine(DatabaseSettings(url=url))
    await upgrade(engine)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    async with session_factory(engine)() as session, session.begin():
        await seed_chain(session)
    await engine.dispose()


def write_config(folder: Path, port: int, db_url: str, workers: int) -> Path:
    cfg = folder / f"bench-{port}.toml"
    cfg.write_text(
        f'[server]\nport = {port}\ndata_dir = "{folder / "data"}"\n[database]\nurl = "{db_url}"\n'
        f'[wecom]\ncorp_id = "{CORP}"\nsecret = "x"\ntoken = "{TOKEN}"\nencoding_aes_key = "{AES_KEY}"\n'
        f'api_base = "http://127.0.0.1:9"\n[scheduler]\nenabled = false\n[inbox]\nworkers = {workers}\n'
        '[outbox]\nbackground = false\n',
        encoding="utf-8",
    )
    return cfg


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    name: str
    burst: Result
    steady: Result
    cpu_us: float  # server CPU per request in the burst: what the server costs, whatever else shares the machine
    drain_s: float = 0.0  # with the worker: how long after the burst until every event was done


async def measure(name: str, argv: list[str], port: int, args: argparse.Namespace, db_url: str | None = None) -> Run:
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.DEVNULL)
    try:
        await wait_up(port, proc)
        url = f"http://127.0.0.1:{port}{PATH}"
        await closed_loop(url, 200, args.concurrency)  # warm up
        cpu_before = cpu_seconds(proc.pid)
        burst = await closed_loop(url, args.requests, args.concurrency)
        cpu_us = (cpu_seconds(proc.pid) - cpu_before) / args.requests * 1e6
        drain_s = await wait_drained(db_url) if db_url else 0.0  # the paced run starts with an empty inbox
        steady = await paced(url, args.rate, args.seconds)
        if db_url:
            await wait_drained(db_url)
        return Run(name, burst, steady, cpu_us, drain_s)
    finally:
        await stop(proc)


async def stop(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM, then SIGKILL after 30 s: a bench must never leave a server behind."""
    if proc.returncode is not None:
        return
    proc.terminate()
    try:
        async with asyncio.timeout(30):
            await proc.wait()
    except TimeoutError:
        proc.kill()
        await proc.wait()


BARE = "bare decrypt-only handler"


def label(db: str, workers: int) -> str:
    return f"{db}, " + ("1 inbox worker" if workers else "inbox worker off")


async def main(args: argparse.Namespace) -> None:
    runs: list[Run] = []
    dbs = [d.strip() for d in args.db.split(",") if d.strip()]
    urls: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for db in dbs:
            urls[db] = (f"sqlite+aiosqlite:///{folder / 'bench.db'}" if db == "sqlite"
                        else await create_pg_database(args.pg_url))
            await prepare_db(urls[db])
        try:
            for _ in range(args.rounds):  # alternate the servers so a noisy neighbour hurts them alike
                port = free_port()
                runs.append(await measure(BARE, [sys.executable, __file__, "--bare-server", str(port)], port, args))
                for db in dbs:
                    for workers in (0, 1):
                        port = free_port()
                        cfg = write_config(folder, port, urls[db], workers)
                        argv = [sys.executable, "-m", "bot", "serve", "--config", str(cfg)]
                        runs.append(await measure(label(db, workers), argv, port, args,
                                                  urls[db] if workers else None))
            counts = {db: await inbox_counts(url) for db, url in urls.items()}
        finally:
            for db, url in urls.items():
                if db != "sqlite":
                    await drop_pg_database(args.pg_url, url)
    report(runs, dbs, counts, args)


def report(runs: list[Run], dbs: list[str], counts: dict[str, dict[str, int]], args: argparse.Namespace) -> None:
    print(f"\ncallback ack over loopback: {args.requests} requests at concurrency {args.concurrency}, then paced "
          f"{args.rate:.0f} req/s for {args.seconds:.0f} s; {', '.join(dbs)}; {os.cpu_count()} CPUs; "
          f"{args.rounds} rounds")
    print(f"{'server':34} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'cpu us/req':>10} {'errors':>6} | "
          f"{'paced p50':>9} {'paced p99':>9} | {'drained':>7}")
    for r in runs:
        print(f"{r.name:34} {r.burst.rps:7.0f} {r.burst.pct(50):7.2f} {r.burst.pct(99):7.2f} {r.cpu_us:10.0f} "
              f"{r.burst.errors + r.steady.errors:6d} | {r.steady.pct(50):9.2f} {r.steady.pct(99):9.2f} | "
              f"{r.drain_s:6.1f}s")
    for db in dbs:
        print(f"{db} inbox at the end: {counts[db]} (with the worker, every event must be done)")

    bares = [r for r in runs if r.name == BARE]
    print(f"\nper round, against that round's bare run (the machine is shared: pairs cancel most of the noise); "
          f"median of {args.rounds}:")
    for name in (label(db, w) for db in dbs for w in (0, 1)):
        reals = [r for r in runs if r.name == name]
        ratios = [real.burst.rps / bare.burst.rps for real, bare in zip(reals, bares, strict=True)]
        cpu_ratios = [bare.cpu_us / real.cpu_us for real, bare in zip(reals, bares, strict=True)]
        p99s = [r.steady.pct(99) for r in reals]
        ratio, p99 = statistics.median(ratios), statistics.median(p99s)
        drained = (f"; the burst's backlog done {statistics.median(r.drain_s for r in reals):.1f} s after it"
                   if "worker off" not in name else "")
        print(f"{name}: throughput {', '.join(f'{x:.0%}' for x in ratios)} of bare → median {ratio:.0%} "
              f"(goal ≥ 50%: {'met' if ratio >= 0.5 else 'MISSED'}); bare's CPU per request is "
              f"{statistics.median(cpu_ratios):.0%} of this one's; paced p99 at {args.rate:.0f} req/s "
              f"{', '.join(f'{x:.1f}' for x in p99s)} ms → median {p99:.1f} ms "
              f"(goal < 50 ms: {'met' if p99 < 50 else 'MISSED'}){drained}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--db", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    parser.add_argument("--pg-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test",
                        help="a PostgreSQL server to create the bench database on")
    parser.add_argument("--bare-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    ns = parser.parse_args()
    if ns.bare_server:
        bare_server(ns.bare_server)
    else:
        asyncio.run(main(ns))
