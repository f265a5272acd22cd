"""The sandbox phone page in a real browser (Debian's chromium driven by Playwright) against the real app."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser_support import chromium
from tests.factories import Chain
from tests.fixtures_sandbox import Harness

SHOTS = Path(os.environ.get("STOREBOT_SCREENSHOTS", "/tmp"))

pytestmark = pytest.mark.browser


@pytest.fixture
async def page() -> AsyncIterator[Any]:
    async with chromium() as browser:
        context = await browser.new_context(viewport={"width": 420, "height": 820}, locale="zh-CN")
        tab = await context.new_page()
        tab.set_default_timeout(8000)
        yield tab


def _card(task_id: str) -> dict[str, Any]:
    return {
        "card_type": "button_interaction", "task_id": task_id,
        "main_title": {"title": "调拨申请 #1", "desc": "徐汇店 → 静安店"},
        "horizontal_content_list": [{"keyname": "商品", "value": "农夫山泉 550ml × 5"},
                                    {"keyname": "申请人", "value": "王店长"}],
        "button_list": [{"text": "批准", "key": "transfer:approve:1", "style": 1},
                        {"text": "驳回", "key": "transfer:reject:1", "style": 2}],
    }


async def test_phone_page_chat_reply_card_photo_location(page: Any, harness: Harness, chain: Chain) -> None:
    from playwright.async_api import expect

    sb = harness.sandbox
    await page.goto(f"{sb.config.public_url}/?user=s1")
    await expect(page.locator("#user")).to_have_value("s1")
    await expect(page.locator("#user option")).to_have_count(len(sb.config.users))

    await page.fill("#text", "帮助")
    await page.click("#send")
    await expect(page.locator(".row.me .bubble").last).to_have_text("帮助")
    assert sb.user_sent[-1].status == 200
    await harness.settle()
    await expect(page.locator(".row.bot .bubble").last).to_contain_text("盘点 A001 7")

    await page.click("#photo")
    await expect(page.locator(".row.me img.photo")).to_have_count(1)
    assert sb.user_sent[-1].kind == "image" and sb.user_sent[-1].status == 200

    await page.click("#location")
    await page.fill("#loc-label", "徐汇店门口")
    await page.click("#loc-send")
    await expect(page.locator(".row.me .bubble").last).to_have_text("[位置] 徐汇店门口")
    await harness.settle()
    await page.screenshot(path=str(SHOTS / "storebot-phone-s1.png"))

    # a markdown message and an interactive card, as the bot's outbox would send them
    sb.send_message({"touser": "sup1", "msgtype": "markdown", "agentid": 1000002,
                     "markdown": {"content": "**库存预警**\n> A001 <font color=\"warning\">仅剩 3 瓶</font>"}})
    sent = sb.send_message({"touser": "sup1", "msgtype": "template_card", "agentid": 1000002,
                            "template_card": _card("transfer-1-browser")})
    await page.select_option("#user", "sup1")
    await expect(page.locator(".bubble.md strong")).to_have_text("库存预警")
    await expect(page.locator(".bubble.md .font-warning")).to_have_text("仅剩 3 瓶")
    card = page.locator(".card").last
    await expect(card.locator(".t")).to_have_text("调拨申请 #1")
    await expect(card.locator("dd").first).to_have_text("农夫山泉 550ml × 5")
    await card.locator("button[data-key='transfer:approve:1']").click()
    await expect(page.locator(".row.me .bubble").last).to_have_text("[点击] 批准")
    assert sb.user_sent[-1].kind == "click" and sb.user_sent[-1].status == 200
    await harness.settle()

    sb.update_card({"agentid": 1000002, "response_code": sent["response_code"], "button": {"replace_name": "已批准"}})
    await expect(card.locator(".replaced")).to_have_text("已批准")
    await expect(card.locator("button")).to_have_count(0)
    await page.screenshot(path=str(SHOTS / "storebot-phone-page.png"), full_page=True)


async def test_phone_page_says_what_to_do_without_text(page: Any, harness: Harness) -> None:
    from playwright.async_api import expect

    await page.goto(f"{harness.sandbox.config.public_url}/?user=m1")
    await expect(page.locator("#user")).to_have_value("m1")
    await page.click("#send")
    await expect(page.locator("#toast")).to_have_text("请输入要发送的内容")
    assert harness.sandbox.user_sent == []


async def test_phone_page_menu_scan_sends_the_barcode(page: Any, harness: Harness, chain: Chain) -> None:
    from playwright.async_api import expect

    sb = harness.sandbox
    sb.menus[sb.config.agent_id] = {"button": [
        {"name": "库存", "sub_button": [{"type": "scancode_waitmsg", "name": "扫码入库", "key": "scan_in"}]},
        {"type": "click", "name": "帮助", "key": "help"},
    ]}
    page.on("dialog", lambda dialog: dialog.accept("6900000000028"))
    await page.goto(f"{sb.config.public_url}/?user=s1")
    await expect(page.locator("#menu button")).to_have_count(2)
    await page.click("#menu button[data-key='scan_in']")
    await expect(page.locator(".row.me .bubble").last).to_have_text("[扫码] 6900000000028")
    assert (sb.user_sent[-1].kind, sb.user_sent[-1].status) == ("scan", 200)
    await page.click("#menu button[data-key='help']")
    await expect(page.locator(".row.me .bubble").last).to_have_text("[菜单] help")
    await harness.settle()
