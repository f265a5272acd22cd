"""The console in Debian's Chromium (Playwright): log in through the sandbox's authorize page, change a setting
and see it applied, upload a safety-stock file and watch its progress; screenshots at 1366×768 and 375×812."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from bot.keys import DEPS
from tests.browser_support import browser
from tests.console_support import Console, console
from tests.factories import Chain

__all__ = ["browser", "console"]
pytestmark = pytest.mark.browser
SHOTS = Path(os.environ.get("STOREBOT_CONSOLE_SHOTS", "/tmp/console-shots"))
DESKTOP = {"width": 1366, "height": 768}
PHONE = {"width": 375, "height": 812}


async def _tab(browser: Any, viewport: dict[str, int]) -> Any:
    context = await browser.new_context(viewport=viewport, locale="zh-CN")
    tab = await context.new_page()
    tab.set_default_timeout(10000)
    return tab


async def _shot(tab: Any, name: str) -> None:
    await asyncio.to_thread(SHOTS.mkdir, parents=True, exist_ok=True)
    await tab.screenshot(path=str(SHOTS / name), full_page=True)


async def _login(tab: Any, console: Console, userid: str) -> None:
    from playwright.async_api import expect

    await tab.goto(f"{console.base}/console")
    await expect(tab.get_by_text("用企业微信登录")).to_be_visible()
    await tab.get_by_text("用企业微信登录").click()
    await expect(tab.locator(f"a.who[data-userid='{userid}']")).to_be_visible()
    await tab.locator(f"a.who[data-userid='{userid}']").click()
    await expect(tab.locator(".who form button")).to_have_text("退出")


async def test_login_and_change_a_setting_in_chromium(browser: Any, console: Console, chain: Chain,
                                                      tmp_path: Path) -> None:
    from playwright.async_api import expect

    tab = await _tab(browser, DESKTOP)
    await tab.goto(f"{console.base}/console")
    await _shot(tab, "console-login-1366.png")
    await _login(tab, console, "admin")
    await expect(tab.locator("header .who")).to_contain_text("陈总")
    await expect(tab.locator("header .who")).to_contain_text("总部")
    await _shot(tab, "console-home-1366.png")

    await tab.get_by_role("link", name="设置").click()
    await tab.fill("#no_movement_days", "10")
    await tab.fill("#quiet_hours", "22:30-07:30")
    await tab.get_by_role("button", name="保存规则").click()
    await expect(tab.locator(".flash.ok")).to_contain_text("已保存")
    await expect(tab.locator("#no_movement_days")).to_have_value("10")
    config = console.client.server.app[DEPS].config
    assert config.rules.no_movement_days == 10 and config.alerts.quiet_hours == "22:30-07:30"
    await _shot(tab, "console-settings-1366.png")

    await tab.goto(f"{console.base}/console/settings/safety?store=S002")
    csv = tmp_path / "safety.csv"
    csv.write_text("门店编码,商品编码,安全库存\n" + "".join(f"S00{s},A00{k},{s * 10 + k}\n"
                                                          for s in range(1, 5) for k in range(1, 6)),
                   encoding="utf-8")
    await tab.set_input_files("input[type=file]", str(csv))
    await tab.get_by_role("button", name="上传并应用").click()
    await expect(tab.locator("#progress-text")).to_contain_text("完成：共 20 行")
    await expect(tab.locator("#progress")).to_have_attribute("value", "20")
    await _shot(tab, "console-safety-1366.png")

    await tab.get_by_role("link", name="修改记录").first.click()
    await expect(tab.locator("table")).to_contain_text("滞销天数")
    await expect(tab.locator("table")).to_contain_text("文件 safety.csv")
    await _shot(tab, "console-audit-1366.png")


async def test_console_on_a_phone(browser: Any, console: Console, chain: Chain) -> None:
    from playwright.async_api import expect

    tab = await _tab(browser, PHONE)
    await tab.goto(f"{console.base}/console")
    await _shot(tab, "console-login-375.png")
    await tab.get_by_text("用企业微信登录").click()
    await _shot(tab, "console-authorize-375.png")
    await tab.locator("a.who[data-userid='m1']").click()
    await expect(tab.locator("header .who")).to_contain_text("王店长")
    await _shot(tab, "console-home-375.png")
    await tab.goto(f"{console.base}/console/settings")
    await expect(tab.get_by_text("只有总部可以修改")).to_be_visible()
    await _shot(tab, "console-settings-375.png")
    await tab.goto(f"{console.base}/console/settings/safety")
    row = tab.locator("tr", has_text="A001")
    await row.locator("input[name=value]").fill("8")
    await row.get_by_role("button", name="保存").click()
    await expect(tab.locator(".flash.ok")).to_contain_text("已保存")
    await _shot(tab, "console-safety-375.png")
    width = await tab.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the page is {width}px wide on a 375px phone"
