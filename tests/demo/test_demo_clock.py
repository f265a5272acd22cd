"""The demo panel's clock control: +2 h and next morning 08:00, with the skipped time's jobs run right after, so
task cards, reminders, overdue notices and the supervisors' morning digest show up in minutes."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

import aiohttp

from bot.demo.panel import DEMO_PANEL, _error, jump_for
from bot.demo.run import DemoRun
from tests.demo.test_demo_loops import _chat, _submit, _wait_for, demo

__all__ = ["demo"]  # the fixture, shared with tests/demo/test_demo_loops.py

Demo = tuple[DemoRun, object, aiohttp.ClientSession]


def test_jumps_are_two_hours_or_to_eight_next_morning() -> None:
    afternoon = datetime(2026, 11, 24, 6, 0, 5, tzinfo=UTC)  # 14:00:05 Shanghai
    assert jump_for("2h", afternoon) == timedelta(hours=2)
    assert jump_for("morning", afternoon) == timedelta(hours=17, minutes=59, seconds=55)
    early = datetime(2026, 11, 23, 22, 30, tzinfo=UTC)  # 06:30 Shanghai: this morning's 08:00 is next
    assert jump_for("morning", early) == timedelta(hours=1, minutes=30)
    assert jump_for("yesterday", afternoon) is None


def test_api_errors_in_the_demo_log_are_chinese() -> None:
    assert _error({"error": "No sku by the id of 'NOPE' was found"}) == "找不到商品 NOPE，请检查后再试。"
    assert _error({"error": "stores: unknown store 'S999'"}) == "找不到门店 S999，请检查后再试。"
    assert _error({"error": "lines.0.qty: 99999 is above the limit of 10000"}) == "数量不合理，请填写合理的正整数。"
    assert _error({"error": "missing or wrong X-Storebot-Signature"}, 401) == "口令或签名不对，接口拒绝了请求。"
    assert _error({"error": "ClientConnectorError: refused"}, 0).startswith("连不上机器人自己的接口")
    for text in (_error({"error": e}) for e in ("body is not valid JSON: x", "sold_at: Input should be a datetime")):
        assert not re.search(r"[A-Za-z]{3,}", text), text


async def _jumped(browser: aiohttp.ClientSession, run: DemoRun, choice: str) -> str:
    """Press a clock button, wait (bounded) for the replay of the skipped jobs to finish, return the dashboard."""
    html = await _submit(browser, run, "clock", {"jump": choice})
    assert "正在拨快" in html
    task = run.bot_app[DEMO_PANEL].jump
    assert task is not None
    async with asyncio.timeout(120):
        await asyncio.shield(task)
    async with browser.get(f"{run.bot_url}/dashboard") as r:
        return await r.text()


async def test_clock_jumps_run_the_skipped_jobs_and_the_phones_show_them(demo: Demo) -> None:
    run, _clock, browser = demo
    async with browser.get(f"{run.bot_url}/dashboard") as r:
        assert "演示时间 <b>11-24 14:00</b>" in await r.text()

    html = await _jumped(browser, run, "morning")  # 14:00 → 08:00 next day
    assert "演示时间 <b>11-25 08:00</b>（已拨快 17 小时 59 分钟）" in html
    log = re.search(r"时钟拨快 17 小时 59 分钟，演示时间现在是 11-25 08:00。这段时间里：([^<]*)", html)
    assert log is not None and "新任务" in log.group(1) and "超时通知店长" in log.group(1), html
    # 21:30 闭店盘点 went out, was not done; at 22:45 the manager heard of it
    await _wait_for(browser, run, "zhangwei", lambda i: "闭店盘点" in i.get("text", "") and "还没有完成" in i["text"])

    html = await _jumped(browser, run, "2h")  # 10:00: the 08:30 digest and the 09:00 晨检
    assert "演示时间 <b>11-25 10:00</b>" in html and "督导晨报 2 份" in html
    digest = await _wait_for(browser, run, "fengtao", lambda i: "华东区晨报 11-25" in i.get("text", ""))
    assert "**昨天漏做的任务" in digest["text"] and "闭店盘点" in digest["text"]
    await _wait_for(browser, run, "dongjie", lambda i: "华南区晨报 11-25" in i.get("text", ""))

    html = await _submit(browser, run, "clock", {"jump": "back"})
    assert "请选择「+2 小时」或「到明早 8 点」" in html and "演示时间 <b>11-25 10:00</b>" in html
    assert len([i for i in await _chat(browser, run, "fengtao") if "晨报" in i.get("text", "")]) == 1
