"""The dashboard cookie is a signed, expiring session, never the admin token (issue 10: the cookie held the raw
bearer token of /api/*)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from bot import signing
from bot.api.dashboard import COOKIE, session_key
from bot.clock import FakeClock
from bot.config import Settings
from tests.conftest import TEST_ADMIN_TOKEN, AppClient, auth


async def login(client: AppClient) -> str:
    r = await client.get("/dashboard", params={"token": TEST_ADMIN_TOKEN})
    assert r.status == 200
    header = r.headers["Set-Cookie"]
    assert TEST_ADMIN_TOKEN not in header
    morsel = r.cookies[COOKIE]
    assert morsel["httponly"] and morsel["samesite"] == "Lax" and morsel["path"] == "/dashboard"
    assert int(morsel["max-age"]) == 12 * 3600
    client.session.cookie_jar.clear()  # send only the cookies a test names
    return morsel.value


async def page(client: AppClient, cookie: str) -> int:
    return (await client.get("/dashboard", headers={"Cookie": f"{COOKIE}={cookie}"})).status


async def test_dashboard_cookie_held_the_raw_admin_token(client: AppClient, clock: FakeClock) -> None:
    cookie = await login(client)
    assert cookie != TEST_ADMIN_TOKEN and TEST_ADMIN_TOKEN not in cookie
    assert await page(client, cookie) == 200
    assert await page(client, TEST_ADMIN_TOKEN) == 401  # the old cookie format opens nothing now
    # the session is for the dashboard only: it is no bearer token for the API
    assert (await client.get("/api/outbox", headers={"Cookie": f"{COOKIE}={cookie}"})).status == 401
    assert (await client.get("/api/outbox", headers=auth())).status == 200


async def test_dashboard_session_expires(client: AppClient, clock: FakeClock) -> None:
    cookie = await login(client)
    clock.advance(hours=11, minutes=59)
    assert await page(client, cookie) == 200
    clock.advance(minutes=1)
    assert await page(client, cookie) == 401
    assert await page(client, await login(client)) == 200  # ?token= logs in again


async def test_dashboard_session_refuses_tampering(client: AppClient, clock: FakeClock) -> None:
    cookie = await login(client)
    expires, nonce, mac = cookie.split(".")
    later = str(int(expires) + 86400)
    for forged in (f"{later}.{nonce}.{mac}", f"{expires}.{nonce}x.{mac}", f"{expires}.{nonce}.{mac[:-2]}AA",
                   f"{expires}.{nonce}", "", "x" * 300, "..", "1.%C2%B2.x"):
        assert await page(client, forged) == 401, forged
    assert await page(client, cookie) == 200


async def test_dashboard_session_ends_when_the_secret_changes(
    make_client: Callable[..., Awaitable[AppClient]], make_settings: Callable[..., Settings], clock: FakeClock,
) -> None:
    first = await make_client()
    cookie = await login(first)
    rotated = await make_client(make_settings(server={"admin_token": "another-token"}))
    assert await page(rotated, cookie) == 401
    keyed = make_settings(server={"session_secret": "a-separate-session-secret"})
    assert session_key(keyed) != session_key(make_settings())
    assert session_key(make_settings()) != TEST_ADMIN_TOKEN.encode()
    other = await make_client(keyed)
    assert await page(other, cookie) == 401
    assert await page(other, signing.issue(session_key(keyed), clock.now(), timedelta(hours=1))) == 200
