"""Kill -9 after the 200 and before processing: the restarted `storebot serve` processes the event, once."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

import aiohttp
from sqlalchemy import select

from bot.config import DatabaseSettings
from bot.db import make_engine, session_factory, upgrade
from bot.messages import render
from models.base import Base
from models.inbox import InboundEvent
from models.outbox import OutboundMessage
from tests.edge.test_callback_parse import envelope, load_payload
from tests.edge.test_serve import STARTUP_SECONDS, SUBPROCESS_TEST_TIMEOUT, free_port, write_config
from tests.factories import seed_chain


def with_workers(cfg: Path, workers: int) -> None:
    cfg.write_text(cfg.read_text(encoding="utf-8") + f"[inbox]\nworkers = {workers}\n", encoding="utf-8")


async def prepare(url: str) -> None:
    """Schema (migrations + tables not yet migrated, as the test suite builds it) and the sample chain."""
    engine = make_engine(DatabaseSettings(url=url))
    try:
        await upgrade(engine)
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        async with session_factory(engine)() as session, session.begin():
            await seed_chain(session)
    finally:
        await engine.dispose()


async def snapshot(url: str) -> tuple[list[InboundEvent], list[OutboundMessage]]:
    engine = make_engine(DatabaseSettings(url=url))
    try:
        async with session_factory(engine)() as s:
            events = list((await s.execute(select(InboundEvent))).scalars())
            replies = list((await s.execute(select(OutboundMessage))).scalars())
        return events, replies
    finally:
        await engine.dispose()


async def start(cfg: Path, port: int) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "serve", "--config", str(cfg),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    async with asyncio.timeout(STARTUP_SECONDS), aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                    if r.status == 200:
                        return proc
            except aiohttp.ClientConnectionError:
                assert proc.returncode is None, "storebot serve exited during start"
                await asyncio.sleep(0.1)


@SUBPROCESS_TEST_TIMEOUT
async def test_kill_9_after_the_200_then_restart_processes_the_event_exactly_once(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'crash.db'}"
    await prepare(url)
    port = free_port()
    accept_cfg = write_config(tmp_path / "accept.toml", url, port=port)
    with_workers(accept_cfg, 0)  # accept-only: the event is stored, never processed, before the kill

    proc = await start(accept_cfg, port)
    try:
        params, body = envelope(load_payload("text", user="s1", msgid=4242, content="帮助"), int(time.time()))
        async with aiohttp.ClientSession() as http, http.post(
            f"http://127.0.0.1:{port}/wecom/callback", params=params, data=body
        ) as resp:
            assert (resp.status, await resp.read()) == (200, b"")
    finally:
        proc.send_signal(signal.SIGKILL)
        async with asyncio.timeout(10):
            await proc.wait()
    events, replies = await snapshot(url)
    assert [(e.dedupe_key, e.state) for e in events] == [("msg:4242", "pending")] and replies == []

    process_cfg = write_config(tmp_path / "process.toml", url, port=port)
    with_workers(process_cfg, 1)
    proc = await start(process_cfg, port)
    try:
        async with asyncio.timeout(60):
            while True:  # poll the database: the effect is all there is to observe
                events, replies = await snapshot(url)
                if events[0].state != "pending":
                    break
                await asyncio.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            await proc.wait()
    assert [(e.state, e.attempts) for e in events] == [("done", 1)]
    assert [(r.recipient, r.payload["content"]) for r in replies] == [("s1", render("help", reason=""))]
