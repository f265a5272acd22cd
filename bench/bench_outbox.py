"""Outbox throughput to the WeCom sandbox against a raw aiohttp POST loop sending the same bodies.

    python bench/bench_outbox.py [-n 8000] [--repeat 5] [--db postgresql+asyncpg://...] [--sandbox both]

Each round starts a fresh sandbox on loopback (no faults, real clock), in its own process (as WeCom is remote)
and/or inside this process (sharing its event loop and CPU with the side being measured). The outbox side queues
N text messages (spread over enough members that the 30/min budget never binds) and times the real worker's
drain(): claim, budget check, send, record, all against the database. The raw side POSTs the same N
message/send bodies with
the same access token and the same concurrency, and does nothing else. Goal: outbox >= 70% of raw.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import delete, func, select, text

from bot.app import create_app
from bot.config import DatabaseSettings, Settings, settings_from_dict
from bot.db import make_engine, upgrade
from bot.keys import OUTBOX, WECOM
from bot.sandbox import Sandbox, SandboxConfig, create_sandbox_app
from models.base import Base
from models.outbox import OutboundMessage, send_text

CORP, SECRET = "wwbenchcorp", "bench-secret"
PER_MEMBER = 20  # under the 30/min budget: the bench measures sending, not waiting


def texts(n: int) -> list[tuple[str, str]]:
    return [(f"u{i % max(1, n // PER_MEMBER):04d}", f"库存提醒 #{i}：A001 低于安全库存，请补货。") for i in range(n)]


@asynccontextmanager
async def sandbox_at(n: int, separate: bool) -> AsyncIterator[tuple[str, Callable[[], int | None]]]:
    """A fresh sandbox for one round: (its URL, how many messages it delivered, None when not observable).

    In-process it shares this event loop and this CPU with the side being measured; in its own process (as
    WeCom is remote) each side only pays for its own work."""
    users = {f"u{i:04d}": f"员工{i}" for i in range(max(1, n // PER_MEMBER))}
    if not separate:
        sandbox = Sandbox(SandboxConfig(corp_id=CORP, corp_secret=SECRET, users=users, seed=1))
        server = TestServer(create_sandbox_app(sandbox))
        await server.start_server()
        try:
            yield str(server.make_url("")).rstrip("/"), lambda: sum(1 for d in sandbox.deliveries if not d.dropped)
        finally:
            await server.close()
        return
    env = {**os.environ, "STOREBOT_SANDBOX_CORP_ID": CORP, "STOREBOT_SANDBOX_CORP_SECRET": SECRET,
           "STOREBOT_SANDBOX_USERS": ",".join(f"{k}:{v}" for k, v in users.items())}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from bot.sandbox import run_sandbox; run_sandbox(port=0)",
        env=env, stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            line = (await proc.stdout.readline()).decode()
        match = re.search(r"(http://\S+)/cgi-bin/", line)
        if not match:
            raise SystemExit(f"sandbox did not start: {line!r}")
        yield match.group(1), lambda: None
    finally:
        proc.terminate()
        await proc.wait()


def settings_for(db_url: str, api_base: str) -> Settings:
    return settings_from_dict({
        "server": {"data_dir": tempfile.mkdtemp(prefix="bench-outbox-"), "port": 0},
        "database": {"url": db_url},
        "wecom": {"corp_id": CORP, "secret": SECRET, "api_base": api_base},
        "scheduler": {"enabled": False},
        "outbox": {"background": False},
        "inbox": {"workers": 0},
    })


async def outbox_round(db_url: str, n: int, separate: bool) -> float:
    async with sandbox_at(n, separate) as (base, delivered):
        return await _outbox_round(db_url, n, base, delivered)


async def _outbox_round(db_url: str, n: int, base: str, delivered: Callable[[], int | None]) -> float:
    engine = make_engine(DatabaseSettings(url=db_url))
    async with engine.begin() as conn:  # each round starts from an empty table (PostgreSQL: no dead rows either)
        if conn.dialect.name == "postgresql":
            await conn.execute(text("TRUNCATE outbox"))
        else:
            await conn.execute(delete(OutboundMessage))
    app = create_app(settings_for(db_url, base), engine=engine)
    runner = web.AppRunner(app)
    await runner.setup()  # runs the cleanup contexts: database, client, workers
    try:
        worker = app[OUTBOX]
        await app[WECOM].get_token()  # both sides start with a token
        now = worker.deps.clock.now()
        async with worker.deps.sessions() as session, session.begin():
            for userid, content in texts(n):
                await send_text(session, userid, content, now=now)
        started = time.perf_counter()
        sent = await worker.drain()
        elapsed = time.perf_counter() - started
        async with worker.deps.sessions() as session:
            with_msgid = await session.scalar(
                select(func.count()).where(OutboundMessage.state == "sent", OutboundMessage.msgid.is_not(None))
            )
        seen = delivered()
        if sent != n or with_msgid != n or seen not in (None, n):
            raise SystemExit(f"outbox round: drained {sent}, sent with msgid {with_msgid}, sandbox saw {seen}")
        return n / elapsed
    finally:
        await runner.cleanup()
        await engine.dispose()


async def raw_round(n: int, concurrency: int, separate: bool) -> float:
    async with sandbox_at(n, separate) as (base, _), aiohttp.ClientSession() as http:
        async with http.get(f"{base}/cgi-bin/gettoken", params={"corpid": CORP, "corpsecret": SECRET}) as r:
            token = (await r.json(content_type=None))["access_token"]
        bodies = [
            json.dumps({"touser": u, "msgtype": "text", "text": {"content": c}, "enable_duplicate_check": 1,
                        "duplicate_check_interval": 1800, "agentid": 1000002},
                       ensure_ascii=False, separators=(",", ":")).encode()
            for u, c in texts(n)
        ]
        url = f"{base}/cgi-bin/message/send"
        limit = asyncio.Semaphore(concurrency)

        async def post(body: bytes) -> Any:
            async with limit, http.post(url, params={"access_token": token}, data=body,
                                        headers={"Content-Type": "application/json"}) as resp:
                return await resp.json(content_type=None)

        started = time.perf_counter()
        answers = await asyncio.gather(*(post(b) for b in bodies))
        elapsed = time.perf_counter() - started
    if any(a.get("errcode") for a in answers):
        raise SystemExit(f"raw round: errors {[a for a in answers if a.get('errcode')][:3]}")
    return n / elapsed


async def prepare_db(url: str | None) -> str:
    if url is None:
        url = f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='bench-outbox-')}/bench.db"
    engine = make_engine(DatabaseSettings(url=url))
    await upgrade(engine)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    await engine.dispose()
    return url


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("-n", type=int, default=8000, help="messages per round")
    parser.add_argument("--repeat", type=int, default=5, help="rounds per side (the median is reported)")
    parser.add_argument("--db", default=None, help="database URL (default: a temporary SQLite file)")
    parser.add_argument("--sandbox", choices=("process", "inline", "both"), default="both",
                        help="run the sandbox in its own process (as WeCom is remote), in this one, or both")
    args = parser.parse_args()
    db_url = await prepare_db(args.db)
    outbox = settings_for(db_url, "http://x").outbox
    concurrency = outbox.concurrency
    print(f"database: {db_url.split(':', 1)[0]}, N={args.n}, concurrency={concurrency}, "
          f"batch_size={outbox.batch_size}, rounds={args.repeat}")
    for mode in ("process", "inline") if args.sandbox == "both" else (args.sandbox,):
        separate = mode == "process"
        outbox_rates: list[float] = []
        raw_rates: list[float] = []
        for _ in range(args.repeat):  # interleaved, so machine noise hits both sides alike
            raw_rates.append(await raw_round(args.n, concurrency, separate))
            outbox_rates.append(await outbox_round(db_url, args.n, separate))
        raw, outbox = statistics.median(raw_rates), statistics.median(outbox_rates)
        print(f"sandbox {mode}:")
        print(f"  raw aiohttp POST loop : {raw:7.0f} msg/s  (rounds: {', '.join(f'{r:.0f}' for r in raw_rates)})")
        print(f"  outbox worker drain   : {outbox:7.0f} msg/s  (rounds: {', '.join(f'{r:.0f}' for r in outbox_rates)})")
        print(f"  ratio outbox / raw    : {outbox / raw:7.0%}  (goal >= 70%)")


if __name__ == "__main__":
    asyncio.run(main())
