"""Console test helpers: sign a person in directly (a cookie the server signed) or read a page's CSRF token."""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import AsyncEngine
from yarl import URL

from bot.app import create_app
from bot.clock import FakeClock
from bot.config import Settings
from bot.console.session import COOKIE, session_value
from bot.keys import CLOCK, SETTINGS
from bot.sandbox import Sandbox

CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')


def sign_in(client: TestClient[Any, Any], userid: str) -> None:
    """Give `client` a valid console session for `userid`, as /console/oauth would after a WeCom login."""
    app = client.server.app
    assert app is not None
    value = session_value(app[SETTINGS], userid, app[CLOCK].now())
    client.session.cookie_jar.update_cookies({COOKIE: value})


def csrf_of(html: str) -> str:
    found = CSRF_RE.search(html)
    assert found is not None, "the page has no CSRF token"
    return found.group(1)


@dataclass
class Console:
    """The real app on a known port (its public_url), WeCom's API and web login played by the sandbox."""

    client: TestClient[Any, Any]
    sandbox: Sandbox
    browser: aiohttp.ClientSession  # a second browser-like client with its own cookies, following redirects

    @property
    def base(self) -> str:
        return str(self.client.make_url("")).rstrip("/")

    async def login(self, userid: str, browser: aiohttp.ClientSession | None = None,
                    start: str = "/console/login") -> aiohttp.ClientResponse:
        """Log `userid` in as a person would: /console/login → the sandbox's authorize page → pick → back."""
        browser = browser or self.browser
        page = await browser.get(f"{self.base}{start}")
        html = await page.text()
        assert page.url.path == "/connect/oauth2/authorize", page.url
        found = re.search(rf"href='([^']+)' data-userid='{re.escape(userid)}'", html)
        assert found is not None, f"{userid} is not on the authorize page"
        pick = str(page.url.join(URL(found.group(1).replace("&amp;", "&"))))
        return await browser.get(pick)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
async def console(sandbox: Sandbox, make_settings: Callable[..., Settings], engine: AsyncEngine,
                  clock: FakeClock) -> AsyncIterator[Console]:
    port = free_port()
    settings = make_settings(
        server={"public_url": f"http://127.0.0.1:{port}"},
        wecom={"api_base": sandbox.config.public_url, "oauth_base": sandbox.config.public_url},
        inbox={"workers": 0}, outbox={"background": False},
    )
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(settings, clock=clock, engine=engine), port=port))
    await client.start_server()
    browser = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    try:
        yield Console(client=client, sandbox=sandbox, browser=browser)
    finally:
        await browser.close()
        await client.close()
