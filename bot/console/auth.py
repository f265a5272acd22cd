"""Console login: WeCom's web login (OAuth code → auth/getuserinfo → userid), the session cookie and logout.

`/console/login` sends the browser to `{wecom.oauth_base}/connect/oauth2/authorize` with a `state` bound to a
short-lived HttpOnly cookie; `/console/oauth` accepts the `code` only with that state (a login started in this
browser, not a link someone else made), exchanges it once with `auth/getuserinfo`, and signs the person in when the
directory knows them. The admin bearer token plays no part here.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import timedelta
from urllib.parse import urlencode

from aiohttp import web

from bot import signing
from bot.console.pages import render, render_html
from bot.console.session import (
    COOKIE_PATH,
    _decode,
    _encode,
    _secret,
    check_csrf,
    current_viewer,
    end_session,
    issue_session,
    secure_cookies,
)
from bot.errors import WeComAPIError, WeComConnectionError
from bot.keys import CLOCK, SESSIONS, SETTINGS, WECOM
from models.viewer import viewer_for

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

STATE_COOKIE = "storebot_console_login"
STATE_LIFETIME = timedelta(minutes=10)
INVALID_CODE = 40029


def safe_next(raw: str | None) -> str:
    """Where to go after the login: a console path of ours, never another site ("//evil", "/\\evil")."""
    if not raw or len(raw) > 500 or not raw.startswith("/console") or "\\" in raw or "\x00" in raw:
        return "/console"
    if raw.startswith("/console/login") or raw.startswith("/console/oauth"):
        return "/console"
    return raw


def _state_of(request: web.Request, cookie: str) -> str:
    """The `state` parameter for a login cookie: hex only, as WeCom allows (a-zA-Z0-9, ≤128 bytes)."""
    key = signing.derive_key(_secret(request.app[SETTINGS]), "console-login-state")
    return hmac.new(key, cookie.encode(), hashlib.sha256).hexdigest()[:40]


def _ticket_key(request: web.Request) -> bytes:
    return signing.derive_key(_secret(request.app[SETTINGS]), "console-login-ticket")


def _refused(heading: str, message: str, status: int) -> web.Response:
    response = render_html("login.html", status=status, heading=heading, message=message,
                           hint="点下面的按钮重新登录；仍然不行，请联系总部管理员。")
    response.del_cookie(STATE_COOKIE, path=COOKIE_PATH)
    return response


@routes.get("/console")
async def home(request: web.Request) -> web.StreamResponse:
    viewer = await current_viewer(request)
    if viewer is None:
        return render_html("login.html")
    return render(request, viewer, "home.html", title="控制台")


@routes.get("/console/login")
async def login(request: web.Request) -> web.StreamResponse:
    """Off to WeCom's authorize page, with a state this browser alone can bring back."""
    settings = request.app[SETTINGS]
    ticket = signing.issue(_ticket_key(request), request.app[CLOCK].now(), STATE_LIFETIME)
    cookie = f"{ticket}~{_encode(safe_next(request.query.get('next')))}"
    query = urlencode({
        "appid": settings.wecom.corp_id,
        "redirect_uri": settings.server.public_url.rstrip("/") + "/console/oauth",
        "response_type": "code",
        "scope": "snsapi_base",
        "state": _state_of(request, cookie),
        "agentid": str(settings.wecom.agent_id),
    })
    response = web.HTTPFound(f"{settings.wecom.oauth_base.rstrip('/')}/connect/oauth2/authorize?{query}"
                             "#wechat_redirect")
    response.set_cookie(STATE_COOKIE, cookie, path=COOKIE_PATH, max_age=int(STATE_LIFETIME.total_seconds()),
                        httponly=True, samesite="Lax", secure=secure_cookies(settings))
    raise response


@routes.get("/console/oauth")
async def oauth(request: web.Request) -> web.StreamResponse:
    """WeCom sends the browser back here with `code` and `state`."""
    cookie = request.cookies.get(STATE_COOKIE, "")
    ticket, _, encoded_next = cookie.partition("~")
    given_state = request.query.get("state", "")
    if not (cookie and signing.valid(_ticket_key(request), ticket, request.app[CLOCK].now())
            and hmac.compare_digest(given_state.encode(), _state_of(request, cookie).encode())):
        return _refused("登录没有完成", "这个登录链接已过期，或不是从本页面发起的。", 400)
    code = request.query.get("code", "")
    if not code or len(code) > 512:
        return _refused("登录没有完成", "企业微信没有给出登录码。", 400)
    try:
        info = await request.app[WECOM].get_user_info(code)
    except WeComAPIError as err:
        if err.errcode == INVALID_CODE:
            return _refused("登录没有完成", "登录码无效或已经用过。", 400)
        log.warning("console login: getuserinfo failed: %s", err)
        return _refused("登录没有完成", "企业微信暂时无法确认你的身份，请稍后再试。", 502)
    except WeComConnectionError as err:
        log.warning("console login: WeCom unreachable: %s", err)
        return _refused("登录没有完成", "暂时连不上企业微信，请稍后再试。", 502)
    userid = str(info.get("userid") or "")
    if not userid:
        return _refused("不是本企业成员", "你不是本企业的成员，不能使用控制台。", 403)
    async with request.app[SESSIONS]() as session:
        viewer = await viewer_for(session, userid)
    if viewer is None:
        log.info("console login refused: %r is not in the directory", userid)
        return _refused("通讯录里没有你", f"企业微信账号 {userid} 不在门店通讯录里（或已停用）。"
                        "请联系总部管理员把你加入通讯录后再登录。", 403)
    target = safe_next(_decode(encoded_next))
    response = web.HTTPFound(target)
    issue_session(request, response, viewer.userid)
    response.del_cookie(STATE_COOKIE, path=COOKIE_PATH)
    log.info("console login: %s (%s)", viewer.userid, viewer.role)
    raise response


@routes.post("/console/logout")
async def logout(request: web.Request) -> web.StreamResponse:
    if await current_viewer(request) is not None:
        form = await request.post()
        check_csrf(request, str(form.get("csrf", "")))
    response = web.HTTPFound("/console")
    end_session(response)
    raise response
