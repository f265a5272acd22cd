"""The demo: its sample chain, the dashboard it points to, and `storebot demo` itself as a real process."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import FakeClock
from bot.demo.data import STAFF, demo_skus, write_sample_chain
from bot.importing.importer import import_files
from models.alert import Alert
from models.catalog import Sku
from models.org import Region, Staff, Store
from models.stock import StockLevel
from tests.conftest import TEST_ADMIN_TOKEN, AppClient
from tests.edge.test_serve import STARTUP_SECONDS, SUBPROCESS_TEST_TIMEOUT

Sessions = async_sessionmaker[AsyncSession]


def _ean13_ok(code: str) -> bool:
    digits = [int(d) for d in code]
    weighted = sum(d * (3 if i % 2 else 1) for i, d in enumerate(digits[:12]))
    return len(digits) == 13 and (weighted + digits[12]) % 10 == 0


async def test_sample_chain_is_deterministic_and_imports_through_the_real_importer(
    sessions: Sessions, clock: FakeClock, tmp_path: Path
) -> None:
    first = write_sample_chain(tmp_path / "a")
    second = write_sample_chain(tmp_path / "b")
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    skus = demo_skus()
    assert len(skus) == 200 and len({s.barcode for s in skus}) == 200
    assert all(_ean13_ok(s.barcode) for s in skus)
    assert len({s.category for s in skus}) >= 5

    reports = await import_files(sessions, first, clock=clock)
    assert [r.created for r in reports] == [6, len(STAFF), 200, 1200]
    async with sessions() as s:
        assert (await s.execute(select(func.count()).select_from(Region))).scalar_one() == 2
        per_store = dict(list(await s.execute(
            select(Store.code, func.count()).join(Staff, Staff.store_id == Store.id).group_by(Store.code))))
        managers = dict(list(await s.execute(
            select(Store.code, func.count()).join(Staff, Staff.store_id == Store.id)
            .where(Staff.role == "manager").group_by(Store.code))))
        roles = set((await s.scalars(select(Staff.role))).all())
        near = (await s.execute(select(func.count()).select_from(StockLevel).where(
            StockLevel.on_hand > StockLevel.safety_stock, StockLevel.on_hand <= StockLevel.safety_stock + 2,
        ))).scalar_one()
    assert len(per_store) == 6 and all(3 <= n <= 4 for n in per_store.values())  # a manager and 2–3 staff
    assert managers == dict.fromkeys(per_store, 1)
    assert roles == {"staff", "manager", "supervisor", "admin"}
    assert near >= 6  # a few SKUs per store sit just above their safety line


async def test_dashboard_needs_the_admin_token_then_shows_every_store(
    sessions: Sessions, clock: FakeClock, tmp_path: Path, make_client: Callable[..., Awaitable[AppClient]]
) -> None:
    await import_files(sessions, write_sample_chain(tmp_path), clock=clock)
    client = await make_client()
    r = await client.get("/", allow_redirects=False)
    assert (r.status, r.headers["Location"]) == (302, "/dashboard")
    assert (await client.get("/dashboard")).status == 401
    r = await client.get("/dashboard", params={"token": "wrong"})
    assert r.status == 401
    assert "管理员口令" in await r.text()

    r = await client.get("/dashboard", params={"token": TEST_ADMIN_TOKEN})
    assert r.status == 200
    html = await r.text()
    for name in ("上海徐汇店", "上海静安店", "杭州西湖店", "广州天河店", "深圳福田店", "深圳南山店"):
        assert name in html
    assert "A001 农夫山泉饮用天然水 550ml" in html  # S001's A001 sits just above its line
    assert "店长 张伟" in html
    assert "期初" in html  # the opening moves are the last moves
    # the cookie set by the token link lets the page reload without the token
    cookie = r.cookies["storebot_dashboard"]
    client.session.cookie_jar.clear()  # send only the cookies this test names
    r = await client.get("/dashboard", headers={"Cookie": f"storebot_dashboard={cookie.value}"})
    assert r.status == 200
    r = await client.get("/dashboard", headers={"Cookie": "storebot_dashboard=forged"})
    assert r.status == 401


async def test_dashboard_counts_each_stores_unacknowledged_alerts(
    sessions: Sessions, clock: FakeClock, tmp_path: Path, make_client: Callable[..., Awaitable[AppClient]]
) -> None:
    await import_files(sessions, write_sample_chain(tmp_path), clock=clock)
    async with sessions() as s, s.begin():
        stores = dict(list(await s.execute(select(Store.code, Store.id))))
        skus = dict(list(await s.execute(select(Sku.code, Sku.id))))
        for store, sku, state in (("S001", "A001", "open"), ("S001", "A002", "acknowledged"),
                                  ("S001", "A003", "resolved"), ("S002", "A001", "open"), ("S002", "A002", "open")):
            s.add(Alert(store_id=stores[store], sku_id=skus[sku], kind="low_stock", level="warning", state=state,
                        open_key=None if state == "resolved" else 1, on_hand=3, safety_stock=5,
                        created_at=clock.now()))
    client = await make_client()
    html = await (await client.get("/dashboard", params={"token": TEST_ADMIN_TOKEN})).text()
    assert '<b>3</b>未处理预警' in html
    cards = {m.group(1): m.group(2) for m in re.finditer(r"<h2>(\S+) <small>.*?未处理预警 (\d+)", html, re.S)}
    assert cards == {"上海徐汇店": "1", "上海静安店": "2", "杭州西湖店": "0", "广州天河店": "0", "深圳福田店": "0",
                     "深圳南山店": "0"}


async def test_dashboard_escapes_what_the_data_says(
    sessions: Sessions, clock: FakeClock, tmp_path: Path, make_client: Callable[..., Awaitable[AppClient]]
) -> None:
    stores = tmp_path / "stores.csv"
    stores.write_text('code,name,region\nS1,"<script>alert(1)</script>",华东区\n', encoding="utf-8")
    await import_files(sessions, [stores], clock=clock)
    client = await make_client()
    html = await (await client.get("/dashboard", params={"token": TEST_ADMIN_TOKEN})).text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(1)" not in html


@SUBPROCESS_TEST_TIMEOUT
async def test_storebot_demo_serves_the_phone_and_dashboard_then_stops_on_sigint(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "demo", "--port", "0", "--sandbox-port", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path,
    )
    assert proc.stdout is not None
    out: list[str] = []
    try:
        async with asyncio.timeout(STARTUP_SECONDS):
            while not any("Ctrl-C" in line for line in out):
                line = (await proc.stdout.readline()).decode()
                assert line, f"demo exited early:\n{''.join(out)}"
                out.append(line)
        text = "".join(out)
        phone = re.search(r"Phone:\s+(http://\S+)", text)
        dashboard = re.search(r"Dashboard:\s+(http://\S+)", text)
        bot = re.search(r"Bot:\s+(http://\S+)", text)
        folder = re.search(r"Temp folder:\s+(\S+)", text)
        assert phone and dashboard and bot and folder, text
        temp = Path(folder.group(1))
        assert await asyncio.to_thread(temp.is_dir)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
            for url in (f"{bot.group(1)}/healthz", phone.group(1), dashboard.group(1)):
                async with http.get(url) as r:
                    assert r.status == 200, (url, r.status)
                    body = await r.text()
            assert "上海徐汇店" in body  # the dashboard shows the seeded chain
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            while line := (await proc.stdout.readline()).decode():
                out.append(line)
            assert await proc.wait() == 0, "".join(out)
        assert not await asyncio.to_thread(temp.exists)
    except TimeoutError:
        pytest.fail(f"the demo did not answer in time; its output so far:\n{''.join(out)}")
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
