"""Console test helpers: sign a person in directly (a cookie the server signed) or read a page's CSRF token."""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient

from bot.console.session import COOKIE, session_value
from bot.keys import CLOCK, SETTINGS

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
