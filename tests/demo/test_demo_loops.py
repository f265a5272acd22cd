"""The demo's three loops, driven like a browser: the dashboard's demo panel forms and the phone page's JSON API."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.clock import FakeClock
from bot.demo.data import STORES, sale_defaults, transfer_walkthrough
from bot.demo.run import DIGEST_SECONDS, DemoRun, bind, running_demo
from bot.keys import DEPS
from scheduler.stock_jobs import alert_tick
from tests.conftest import TEST_ADMIN_TOKEN, AppClient

# 14:00:05 in Shanghai: no template of the demo is due, so the scheduler's start-up catch-up creates nothing
START = datetime(2026, 11, 24, 6, 0, 5, tzinfo=UTC)
Item = dict[str, Any]


@pytest.fixture
async def demo(tmp_path: Path) -> AsyncIterator[tuple[DemoRun, FakeClock, aiohttp.ClientSession]]:
    """`storebot demo` in-process (real sockets, its own SQLite file, the scheduler on) with a FakeClock, and a
    browser-like HTTP session that keeps the dashboard cookie."""
    clock = FakeClock(START)
    bot_sock, sandbox_sock = bind(0, 0)
    async with (
        running_demo(tmp_path, bot_sock, sandbox_sock, clock=clock) as run,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),
                              timeout=aiohttp.ClientTimeout(total=20)) as browser,
    ):
        async with browser.get(run.dashboard_url) as r:  # the printed link: sets the cookie the forms use
            assert r.status == 200
        yield run, clock, browser


async def _chat(browser: aiohttp.ClientSession, run: DemoRun, user: str) -> list[Item]:
    async with browser.get(f"{run.phone_url}sandbox/api/chat", params={"user": user}) as r:
        assert r.status == 200
        items: list[Item] = (await r.json())["items"]
        return items


async def _wait_for(browser: aiohttp.ClientSession, run: DemoRun, user: str, match: Callable[[Item], bool],
                    seconds: float = 15) -> Item:
    """Poll the phone page's chat (as the page does) until an item matches; bounded."""
    async with asyncio.timeout(seconds):
        while True:
            for item in await _chat(browser, run, user):
                if item["side"] == "bot" and match(item):
                    return item
            await asyncio.sleep(0.05)


async def _until(fetch: Callable[[], Awaitable[Any]], done: Callable[[Any], bool], seconds: float = 15) -> None:
    """Poll an API answer until `done` holds; bounded."""
    async with asyncio.timeout(seconds):
        while True:
            if done(await fetch()):
                return
            await asyncio.sleep(0.05)


def _card(title: str) -> Callable[[Item], bool]:
    return lambda item: item["kind"] == "template_card" and title in item["card"]["title"]


async def _api(browser: aiohttp.ClientSession, run: DemoRun, path: str) -> Any:
    headers = {"Authorization": f"Bearer {run.creds.admin_token}"}
    async with browser.get(f"{run.bot_url}{path}", headers=headers) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def _submit(browser: aiohttp.ClientSession, run: DemoRun, form: str, data: Any) -> str:
    """Post a panel form the way the browser does, check the redirect back, and return the page it shows."""
    async with browser.post(f"{run.bot_url}/dashboard/demo/{form}", data=data, allow_redirects=False) as r:
        assert (r.status, r.headers["Location"]) == (303, "/dashboard#demo"), await r.text()
    async with browser.get(f"{run.bot_url}/dashboard") as r:
        assert r.status == 200
        return await r.text()


async def test_pos_form_drives_a_sku_under_its_line_and_the_manager_gets_the_digest_within_the_window(
    demo: tuple[DemoRun, FakeClock, aiohttp.ClientSession],
) -> None:
    run, clock, browser = demo
    store, sku, qty = sale_defaults()
    before = await _api(browser, run, f"/api/stock?store={store}&sku={sku}")
    assert before["safety_stock"] < before["on_hand"] < before["safety_stock"] + qty  # the default crosses the line
    assert run.settings.scheduler.enabled and run.settings.alerts.quiet_hours == ""

    html = await _submit(browser, run, "sale", {"store": store, "sku": sku, "qty": str(qty)})
    after = await _api(browser, run, f"/api/stock?store={store}&sku={sku}")
    assert after["on_hand"] == before["on_hand"] - qty < after["safety_stock"]
    assert f"现有 {after['on_hand']}，安全线 {after['safety_stock']}：已低于安全线" in html
    alerts = await _api(browser, run, f"/api/alerts?store={store}&state=open")
    assert [(a["sku"], a["kind"]) for a in alerts] == [(sku, "low_stock")]

    deps = run.bot_app[DEPS]
    assert await alert_tick(deps) == (0, 0)  # the window is still open: nothing yet
    clock.advance(seconds=DIGEST_SECONDS)
    await alert_tick(deps)  # the scheduler's digest job, one tick after the window closed
    card = await _wait_for(browser, run, "zhangwei", _card("库存提醒汇总"))
    assert [i for i in await _chat(browser, run, "zhangwei") if i["kind"] == "template_card"] == [card]
    assert datetime.fromisoformat(card["at"]) - START <= timedelta(seconds=DIGEST_SECONDS)
    assert any(key.startswith(f"{STORES[store][0]} {sku} ") for key, _ in card["card"]["rows"])  # with its name
    assert "alert:ackall:" in card["card"]["buttons"][0]["key"]

    # the same form again is a new sale (fresh sale_id), never a duplicate of the first
    html = await _submit(browser, run, "sale", {"store": store, "sku": sku, "qty": "1"})
    again = await _api(browser, run, f"/api/stock?store={store}&sku={sku}")
    assert again["on_hand"] == after["on_hand"] - 1
    assert len(set(re.findall(r"单号 (demo-[0-9a-f]+)", html))) == 2


async def test_pos_form_refuses_bad_input_and_an_unknown_sku_changes_nothing(
    demo: tuple[DemoRun, FakeClock, aiohttp.ClientSession],
) -> None:
    run, _clock, browser = demo
    before = await _api(browser, run, "/api/stock?store=S001&sku=A001")
    html = await _submit(browser, run, "sale", {"store": "S001", "sku": "A001", "qty": "-2"})
    assert "请填写门店、商品编码和数量" in html
    html = await _submit(browser, run, "sale", {"store": "S001", "sku": "NOPE", "qty": "1"})
    assert "收银失败（HTTP 422）" in html and "NOPE" in html
    async with (  # no dashboard cookie: refused, nothing sold
        aiohttp.ClientSession() as stranger,
        stranger.post(f"{run.bot_url}/dashboard/demo/sale", allow_redirects=False,
                      data={"store": "S001", "sku": "A001", "qty": "1"}) as r,
    ):
        assert r.status == 401
    assert await _api(browser, run, "/api/stock?store=S001&sku=A001") == before


async def test_a_production_app_has_no_demo_panel(make_client: Callable[..., Awaitable[AppClient]]) -> None:
    client = await make_client()
    r = await client.get("/dashboard", params={"token": TEST_ADMIN_TOKEN})
    assert r.status == 200 and "模拟收银" not in await r.text()
    for form in ("sale", "task"):
        r = await client.post(f"/dashboard/demo/{form}", data={"store": "S001", "sku": "A001", "qty": "1"},
                              allow_redirects=False)
        assert r.status == 404


async def test_task_form_pushes_the_card_and_the_sample_photo_from_the_phone_page_completes_it(
    demo: tuple[DemoRun, FakeClock, aiohttp.ClientSession],
) -> None:
    run, _clock, browser = demo
    html = await _submit(browser, run, "task", {"template": "display_photo", "stores": "S001"})
    tasks = await _api(browser, run, "/api/tasks?store=S001")
    assert [(t["template"], t["state"]) for t in tasks] == [("display_photo", "open")]
    assignee = tasks[0]["assignee"]
    assert f"「陈列拍照」已推送 1 个任务，收到卡片的是：{tasks[0]['assignee_name']}（{assignee}）" in html
    await _wait_for(browser, run, assignee, _card("陈列拍照"))

    html = await _submit(browser, run, "task", {"template": "display_photo", "stores": "S001"})
    assert "本期任务在 S001 已经推送过" in html

    async with browser.post(f"{run.phone_url}sandbox/api/photo", json={"user": assignee}) as r:
        assert r.status == 200 and (await r.json())["ok"]
    await _until(lambda: _api(browser, run, "/api/tasks?store=S001"), lambda t: t[0]["state"] in ("done", "late_done"))


async def test_the_printed_transfer_walkthrough_works_step_by_step_on_the_phone_page(
    demo: tuple[DemoRun, FakeClock, aiohttp.ClientSession],
) -> None:
    run, _clock, browser = demo
    steps = transfer_walkthrough()
    async with browser.get(run.dashboard_url) as r:
        html = await r.text()
    for step in steps:
        assert step.who in html  # the panel shows the same walkthrough the banner prints

    async def send(user: str, text: str) -> None:
        async with browser.post(f"{run.phone_url}sandbox/api/text", json={"user": user, "text": text}) as r:
            assert (await r.json())["ok"]

    async def tap(user: str, key: str) -> None:
        async with browser.post(f"{run.phone_url}sandbox/api/click", json={"user": user, "key": key}) as r:
            assert (await r.json())["ok"]

    requester, approver, shipper, _ = (s.userid for s in steps)
    ask = re.search(r"「(调拨 [^」]+)」", steps[0].zh)
    assert ask
    await send(requester, ask.group(1))
    reply = await _wait_for(browser, run, requester, lambda i: "已提交" in i.get("text", ""))
    found = re.search(r"调拨单 (\d+)", reply["text"])
    assert found
    ident = found.group(1)
    await _wait_for(browser, run, approver, _card(f"调拨审批 #{ident}"))
    await tap(approver, f"transfer:approve:{ident}")
    await _wait_for(browser, run, shipper, _card(f"调拨出库 #{ident}"))
    await tap(shipper, f"transfer:ship:{ident}")
    await _wait_for(browser, run, requester, _card(f"调拨到货签收 #{ident}"))
    await send(requester, f"签收 {ident}")
    await _until(lambda: _api(browser, run, f"/api/transfers/{ident}"), lambda t: t["state"] == "received")
