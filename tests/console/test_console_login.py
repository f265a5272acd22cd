"""The console's login: WeCom web login through the sandbox over real HTTP, the session cookie, and what a
request without a session (or with only the admin token) gets."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import aiohttp

from bot.console.session import COOKIE
from bot.sandbox.oauth import issue_login_code
from tests.conftest import TEST_ADMIN_TOKEN, TEST_CORP_ID, auth
from tests.console_support import Console, console, sign_in

__all__ = ["console"]


async def test_console_without_session_shows_login_and_no_data(client, chain) -> None:
    resp = await client.get("/console")
    assert resp.status == 200
    html = await resp.text()
    assert "用企业微信登录" in html
    assert "S001" not in html and "退出" not in html


async def test_admin_token_opens_no_console_page(client, chain) -> None:
    for path in ("/console", "/console/settings", "/console/settings/audit", f"/console?token={TEST_ADMIN_TOKEN}"):
        resp = await client.get(path, headers=auth(), allow_redirects=False)
        html = await resp.text()
        assert "退出" not in html, path
        if resp.status == 302:
            assert resp.headers["Location"].startswith("/console/login"), path
        else:
            assert resp.status == 200 and "用企业微信登录" in html, path
    export = await client.get("/console/export/inventory.csv", headers=auth())
    assert export.status in (401, 404)


async def test_signed_in_person_sees_the_shell_with_name_and_role(client, chain) -> None:
    sign_in(client, "m1")
    resp = await client.get("/console")
    html = await resp.text()
    assert resp.status == 200
    assert "王店长" in html and "店长" in html
    for label in ("库存", "任务", "调拨", "人员", "成效", "客户", "设置", "退出"):
        assert label in html


async def test_login_redirects_to_wecom_authorize_with_state(client, chain, settings) -> None:
    resp = await client.get("/console/login", allow_redirects=False)
    assert resp.status == 302
    location = resp.headers["Location"]
    assert location.startswith("https://open.weixin.qq.com/connect/oauth2/authorize?")
    assert location.endswith("#wechat_redirect")
    query = parse_qs(urlsplit(location).query)
    assert query["appid"] == [TEST_CORP_ID]
    assert query["redirect_uri"] == [f"{settings.server.public_url}/console/oauth"]
    assert query["response_type"] == ["code"] and query["scope"] == ["snsapi_base"]
    assert query["agentid"] == [str(settings.wecom.agent_id)]
    assert query["state"][0].isalnum()
    cookie = resp.cookies["storebot_console_login"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"


async def test_login_through_the_sandbox_authorize_page(console: Console, chain) -> None:
    landed = await console.login("sup1")
    assert landed.status == 200
    assert landed.url.path == "/console"
    html = await landed.text()
    assert "郑督导" in html and "督导" in html and "退出" in html
    cookies = {c.key: c for c in console.browser.cookie_jar}
    session = cookies[COOKIE]
    assert session["httponly"] and session["samesite"] == "Lax" and session["path"] == "/console"
    assert not session["secure"]  # public_url is http here
    assert "storebot_console_login" not in cookies or not cookies["storebot_console_login"].value


async def test_login_returns_to_the_page_asked_for(console: Console, chain) -> None:
    first = await console.browser.get(f"{console.base}/console/settings", allow_redirects=False)
    assert first.status == 302 and first.headers["Location"].startswith("/console/login?next=")
    landed = await console.login("admin", start=first.headers["Location"])
    assert landed.url.path == "/console/settings"


async def _oauth_redirect(console: Console, browser: aiohttp.ClientSession, userid: str) -> str:
    """Start a login and pick `userid`, but stop before the browser goes back to the bot: the /console/oauth URL."""
    start = await browser.get(f"{console.base}/console/login", allow_redirects=False)
    state = parse_qs(urlsplit(start.headers["Location"]).query)["state"][0]
    code = issue_login_code(console.sandbox, userid)
    return f"{console.base}/console/oauth?code={code}&state={state}"


async def test_a_code_works_once(console: Console, chain) -> None:
    url = await _oauth_redirect(console, console.browser, "m1")
    ok = await console.browser.get(url)
    assert ok.status == 200 and "王店长" in await ok.text()
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as other:
        fresh = await _oauth_redirect(console, other, "m2")
        reused = fresh.split("code=")[0] + "code=" + url.split("code=")[1].split("&")[0] + "&state=" \
            + fresh.split("state=")[1]
        again = await other.get(reused)
        assert again.status == 400
        assert "登录码无效或已经用过" in await again.text()
        assert COOKIE not in {c.key for c in other.cookie_jar}


async def test_an_expired_code_is_refused(console: Console, chain, clock) -> None:
    url = await _oauth_redirect(console, console.browser, "m1")
    clock.advance(timedelta(minutes=6))
    resp = await console.browser.get(url)
    assert resp.status == 400 and COOKIE not in {c.key for c in console.browser.cookie_jar}


async def test_state_from_elsewhere_is_refused(console: Console, chain) -> None:
    """Login CSRF: a /console/oauth link made by someone else (their code, no login started here) signs no one in."""
    code = issue_login_code(console.sandbox, "admin")
    resp = await console.browser.get(f"{console.base}/console/oauth?code={code}&state=abc123")
    assert resp.status == 400
    assert "不是从本页面发起" in await resp.text()
    assert COOKIE not in {c.key for c in console.browser.cookie_jar}
    assert code in console.sandbox.oauth_codes  # never even exchanged


async def test_unknown_person_is_told_and_gets_no_session(console: Console, chain) -> None:
    console.sandbox.config.users["visitor"] = "路人甲"
    resp = await console.login("visitor")
    assert resp.status == 403
    html = await resp.text()
    assert "不在门店通讯录里" in html and "visitor" in html
    assert COOKIE not in {c.key for c in console.browser.cookie_jar}
    outsider = await console.login("")
    assert outsider.status == 403 and "不是本企业的成员" in await outsider.text()


async def test_inactive_person_loses_the_console(console: Console, chain, sessions) -> None:
    from sqlalchemy import update

    from models.org import Staff

    await console.login("m1")
    assert "王店长" in await (await console.browser.get(f"{console.base}/console")).text()
    async with sessions() as session, session.begin():
        await session.execute(update(Staff).where(Staff.userid == "m1").values(active=False))
    after = await console.browser.get(f"{console.base}/console")
    assert "王店长" not in await after.text() and "用企业微信登录" in await after.text()


async def test_session_expires(console: Console, chain, clock, settings) -> None:
    await console.login("m1")
    clock.advance(timedelta(hours=settings.console.session_hours, minutes=1))
    resp = await console.browser.get(f"{console.base}/console")
    assert "用企业微信登录" in await resp.text()


async def test_forged_or_moved_cookie_is_no_session(client, chain) -> None:
    sign_in(client, "m1")
    value = next(c.value for c in client.session.cookie_jar if c.key == COOKIE)
    head, _, rest = value.partition("~")
    import base64

    moved = base64.urlsafe_b64encode(b"admin").rstrip(b"=").decode() + "~" + rest
    client.session.cookie_jar.update_cookies({COOKIE: moved})
    assert "用企业微信登录" in await (await client.get("/console")).text()


async def test_logout_ends_the_session(console: Console, chain) -> None:
    from tests.console_support import csrf_of

    page = await console.login("m1")
    html = await page.text()
    refused = await console.browser.post(f"{console.base}/console/logout", data={"csrf": "wrong"})
    assert refused.status == 403
    out = await console.browser.post(f"{console.base}/console/logout", data={"csrf": csrf_of(html)})
    assert "用企业微信登录" in await out.text()
    assert "用企业微信登录" in await (await console.browser.get(f"{console.base}/console")).text()


async def test_sandbox_getuserinfo_behaves_like_wecom(console: Console, chain) -> None:
    sb = console.sandbox.config.public_url
    async with aiohttp.ClientSession() as http:
        token = (await (await http.get(f"{sb}/cgi-bin/gettoken", params={
            "corpid": TEST_CORP_ID, "corpsecret": console.sandbox.config.corp_secret})).json())["access_token"]
        code = issue_login_code(console.sandbox, "s1")
        first = await (await http.get(f"{sb}/cgi-bin/auth/getuserinfo",
                                      params={"access_token": token, "code": code})).json()
        assert first["errcode"] == 0 and first["userid"] == "s1"
        second = await (await http.get(f"{sb}/cgi-bin/auth/getuserinfo",
                                       params={"access_token": token, "code": code})).json()
        assert second["errcode"] == 40029
        no_token = await (await http.get(f"{sb}/cgi-bin/auth/getuserinfo", params={"code": "x"})).json()
        assert no_token["errcode"] != 0
        bad_app = await http.get(f"{sb}/connect/oauth2/authorize", params={
            "appid": "wrong", "redirect_uri": "http://x/", "response_type": "code", "scope": "snsapi_base"})
        assert bad_app.status == 400


async def test_cookies_are_secure_behind_https(make_client, make_settings, sandbox, chain) -> None:
    """Behind https both cookies are Secure (the browser here talks http, so the login cookie is sent by hand)."""
    from bot.console.auth import STATE_COOKIE

    client = await make_client(make_settings(server={"public_url": "https://console.example.cn"},
                                             wecom={"api_base": sandbox.config.public_url}))
    start = await client.get("/console/login", allow_redirects=False)
    assert start.cookies[STATE_COOKIE]["secure"]
    query = parse_qs(urlsplit(start.headers["Location"]).query)
    assert query["redirect_uri"] == ["https://console.example.cn/console/oauth"]
    code = issue_login_code(sandbox, "m1")
    done = await client.get(f"/console/oauth?code={code}&state={query['state'][0]}", allow_redirects=False,
                            headers={"Cookie": f"{STATE_COOKIE}={start.cookies[STATE_COOKIE].value}"})
    assert done.status == 302
    assert done.cookies[COOKIE]["secure"] and done.cookies[COOKIE]["httponly"]
    assert done.cookies[COOKIE]["samesite"] == "Lax"


async def test_require_viewer_answers_401_for_exports_and_redirects_pages(make_settings, engine, clock, chain) -> None:
    """The contract board pages rely on: an export without a session is 401, a page is sent to the login."""
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from bot.app import create_app
    from bot.console.session import require_viewer

    async def probe(request: web.Request) -> web.Response:
        viewer = await require_viewer(request)
        return web.Response(text=f"hello {viewer.userid}")

    app = create_app(make_settings(), clock=clock, engine=engine)
    app.router.add_get("/console/export/probe.csv", probe)
    app.router.add_get("/console/probe", probe)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        export = await client.get("/console/export/probe.csv", headers=auth())
        assert export.status == 401
        page = await client.get("/console/probe?x=1", allow_redirects=False)
        location = page.headers["Location"]
        assert page.status == 302 and location.startswith("/console/login?")
        assert parse_qs(urlsplit(location).query)["next"] == ["/console/probe?x=1"]
        sign_in(client, "m2")
        assert await (await client.get("/console/export/probe.csv")).text() == "hello m2"
    finally:
        await client.close()
