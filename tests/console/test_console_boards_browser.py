"""The boards in Debian's chromium (Playwright) against the real app: each board per role with its charts drawn,
a denied cross-store URL, an export link opened back with openpyxl, a photo rejected from the gallery, and
screenshots at 1366x768 and 375x812 (STOREBOT_BOARD_SHOTS, default /tmp/boards-shots)."""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from bot.console.session import COOKIE, session_value
from bot.keys import CLOCK, SETTINGS
from tests.board_support import BoardRows, seed_board_rows
from tests.browser_support import browser

SHOTS = Path(os.environ.get("STOREBOT_BOARD_SHOTS", "/tmp/boards-shots"))
SIZES = {"desktop": (1366, 768), "phone": (375, 812)}
BOARDS = {"inventory": "库存看板", "tasks": "任务看板", "transfers": "调拨看板", "people": "人员看板",
          "effect": "成效看板", "customers": "客户看板"}
# what each role must see on the inventory board, and what it must never see anywhere
SCOPE = {"m1": ("徐汇店", ("天河店", "福田店")), "sup2": ("天河店", ("徐汇店", "静安店")),
         "admin": ("天河店", ())}

__all__ = ["browser"]  # the fixture
pytestmark = pytest.mark.browser


@pytest.fixture
def shots() -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS


@pytest.fixture
async def rows(sessions: Any, chain: Any, settings: Any) -> BoardRows:
    async with sessions() as session, session.begin():
        return await seed_board_rows(session, chain, Path(settings.server.data_dir))


async def _tab(browser: Any, client: Any, user: str, size: str) -> Any:
    app = client.server.app
    width, height = SIZES[size]
    context = await browser.new_context(viewport={"width": width, "height": height}, locale="zh-CN",
                                        accept_downloads=True)
    base = str(client.make_url("/"))
    value = session_value(app[SETTINGS], user, app[CLOCK].now())
    await context.add_cookies([{"name": COOKIE, "value": value, "url": base + "console"}])
    tab = await context.new_page()
    tab.set_default_timeout(10_000)
    return tab


@pytest.mark.parametrize("user", sorted(SCOPE))
async def test_each_board_per_role_with_screenshots(
    browser: Any, client: Any, rows: BoardRows, shots: Path, user: str
) -> None:
    from playwright.async_api import expect

    mine, never = SCOPE[user]
    errors: list[str] = []
    for size in SIZES:
        tab = await _tab(browser, client, user, size)
        tab.on("pageerror", lambda err: errors.append(str(err)))
        for board, heading in BOARDS.items():
            await tab.goto(str(client.make_url(f"/console/{board}")))
            await expect(tab.locator("h1")).to_contain_text(heading)
            for chart in await tab.locator("[data-chart]").all():
                await expect(chart.locator("canvas").first).to_be_attached()
            text = await tab.locator("main").inner_text()
            for name in never:
                assert name not in text, (user, board, name)
            if board == "inventory":
                assert mine in text
            await tab.screenshot(path=str(shots / f"{board}-{user}-{size}.png"), full_page=size == "desktop")
        assert not errors, errors
        await tab.context.close()


async def test_cross_store_url_denied_export_opened_and_photo_rejected(
    browser: Any, client: Any, rows: BoardRows, shots: Path
) -> None:
    from playwright.async_api import expect

    tab = await _tab(browser, client, "m1", "desktop")
    resp = await tab.goto(str(client.make_url("/console/inventory?store=S003")))
    assert resp is not None and resp.status == 403
    await expect(tab.locator(".flash.bad")).to_contain_text("不在你的查看范围内")
    await tab.screenshot(path=str(shots / "denied-m1-desktop.png"))

    await tab.goto(str(client.make_url("/console/transfers")))
    async with tab.expect_download() as info:
        await tab.click("text=Excel（xlsx）")
    download = await info.value
    path = await download.path()
    body = await asyncio.to_thread(Path(path).read_bytes)
    sheet = load_workbook(io.BytesIO(body), read_only=True).worksheets[0]
    table = [tuple(r) for r in sheet.iter_rows(values_only=True)]
    assert table[0][:4] == ("类别", "调拨单号", "调出门店", "调入门店")
    assert [r[:4] for r in table[1:]] == [("运输中", rows.transfers["shipped_r1"], "静安店", "徐汇店"),
                                          ("超时未签收", rows.transfers["shipped_r1"], "静安店", "徐汇店")]

    await tab.goto(str(client.make_url("/console/tasks")))
    card = tab.locator(f"#photo-{rows.photos['S001']}")
    await expect(card.locator("img")).to_be_visible()
    await card.locator("button.reject").click()
    await expect(tab.locator(f"#photo-{rows.photos['S001']} .tag.bad")).to_contain_text("已退回")
    await tab.locator(f"#photo-{rows.photos['S001']}").scroll_into_view_if_needed()
    await tab.screenshot(path=str(shots / "photo-rejected-m1-desktop.png"))
    await tab.context.close()
