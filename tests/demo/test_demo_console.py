"""`storebot demo` shows a console link, and the demo logs in as any chain member in one click on the sandbox's
authorize page."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from bot.clock import FakeClock
from bot.demo.data import STAFF
from bot.demo.run import banner, bind, running_demo


async def test_demo_console_link_and_one_click_login(tmp_path: Path) -> None:
    bot_sock, sandbox_sock = bind(0, 0)
    clock = FakeClock(datetime(2026, 11, 24, 6, 0, 5, tzinfo=UTC))
    async with (
        running_demo(tmp_path, bot_sock, sandbox_sock, clock=clock) as run,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),
                              timeout=aiohttp.ClientTimeout(total=20)) as browser,
    ):
        text = banner(run)
        link = re.search(r"Console:\s+(http://\S+)", text)
        assert link is not None and link.group(1) == f"{run.bot_url}/console", text
        for userid in ("caoyang", "zhangwei", "lina"):
            browser.cookie_jar.clear()
            async with browser.get(f"{run.bot_url}/console/login") as page:
                assert page.url.host == "127.0.0.1" and page.url.path == "/connect/oauth2/authorize"
                html = await page.text()
            names = re.findall(r"data-userid='([^']*)'", html)
            assert set(STAFF) <= set(names)
            href = re.search(rf"href='([^']+)' data-userid='{userid}'", html)
            assert href is not None
            async with browser.get(str(page.url.join(aiohttp.client.URL(href.group(1).replace("&amp;", "&"))))) as r:
                assert r.status == 200 and r.url.path == "/console"
                assert STAFF[userid][0] in await r.text()
