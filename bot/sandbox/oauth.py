"""WeCom's web login as the sandbox plays it: an authorize page that lists the tenant's members (pick one and the
browser goes back to redirect_uri with `code` and `state`) and `auth/getuserinfo`, where a code works once, for
five minutes, and anything else is errcode 40029 as WeCom answers."""

from __future__ import annotations

import html
import secrets
from datetime import timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from aiohttp import web

from bot.sandbox.api import SANDBOX, _authed
from bot.sandbox.records import JSON, ApiError
from bot.sandbox.user import Sandbox

CODE_TTL = timedelta(minutes=5)
OUTSIDER = ""  # a code for someone outside the corp: getuserinfo answers an openid, no userid
routes = web.RouteTableDef()


def issue_login_code(sandbox: Sandbox, userid: str) -> str:
    """A web-login code for `userid` (OUTSIDER for a WeChat user outside the corp)."""
    code = secrets.token_hex(16)
    sandbox.oauth_codes[code] = (userid, sandbox.clock.now())
    return code


def redeem_login_code(sandbox: Sandbox, code: str | None) -> JSON:
    """getuserinfo's answer for `code`, which is used up; unknown, used or expired → ApiError 40029."""
    entry = sandbox.oauth_codes.pop(code or "", None)
    if entry is None or sandbox.clock.now() - entry[1] > CODE_TTL:
        raise ApiError(40029, "invalid code")
    userid, _ = entry
    if userid == OUTSIDER:
        return {"errcode": 0, "errmsg": "ok", "openid": f"o{secrets.token_hex(12)}"}
    return {"errcode": 0, "errmsg": "ok", "userid": userid}


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), *params.items()]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


def _page(title: str, body: str, status: int = 200) -> web.Response:
    text = (
        "<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>"
        "body{font-family:-apple-system,'PingFang SC','Microsoft YaHei','Noto Sans CJK SC',sans-serif;margin:0;"
        "background:#f2f3f5;color:#222}.box{max-width:440px;margin:6vh auto;background:#fff;border-radius:10px;"
        "padding:20px;box-shadow:0 2px 8px rgba(0,0,0,.08)}h1{font-size:18px;margin:0 0 6px}p{color:#666;"
        "font-size:14px}a.who{display:flex;justify-content:space-between;padding:12px 14px;margin:8px 0;"
        "border:1px solid #dde;border-radius:8px;text-decoration:none;color:#222}a.who:hover{background:#eef4ff}"
        "small{color:#888}</style></head><body><div class='box'>" + body + "</div></body></html>"
    )
    return web.Response(text=text, status=status, content_type="text/html")


@routes.get("/connect/oauth2/authorize")
async def authorize(request: web.Request) -> web.Response:
    """The page WeCom shows (inside the WeCom app it is silent): here the demo picks whom to log in as."""
    sandbox: Sandbox = request.app[SANDBOX]
    q = request.query
    redirect_uri = q.get("redirect_uri", "")
    if q.get("appid") != sandbox.config.corp_id or not redirect_uri.startswith(("http://", "https://")):
        return _page("参数错误", "<h1>参数错误</h1><p>appid 或 redirect_uri 不正确。</p>", status=400)
    if q.get("response_type") != "code" or q.get("scope") not in ("snsapi_base", "snsapi_privateinfo"):
        return _page("参数错误", "<h1>参数错误</h1><p>response_type 或 scope 不正确。</p>", status=400)
    state = q.get("state", "")
    links = []
    for userid, name in sandbox.config.users.items():
        href = "/connect/oauth2/pick?" + urlencode({"userid": userid, "redirect_uri": redirect_uri, "state": state})
        links.append(f"<a class='who' href='{html.escape(href)}' data-userid='{html.escape(userid)}'>"
                     f"<span>{html.escape(name)}</span><small>{html.escape(userid)}</small></a>")
    outsider = "/connect/oauth2/pick?" + urlencode({"userid": OUTSIDER, "redirect_uri": redirect_uri,
                                                    "state": state})
    links.append(f"<a class='who' href='{html.escape(outsider)}' data-userid=''><span>企业外的微信用户</span>"
                 "<small>非成员</small></a>")
    corp = html.escape(sandbox.config.corp_name)
    return _page("企业微信登录", f"<h1>企业微信登录（沙盒）· {corp}</h1><p>选择以谁的身份登录：</p>" + "".join(links))


@routes.get("/connect/oauth2/pick")
async def pick(request: web.Request) -> web.StreamResponse:
    sandbox: Sandbox = request.app[SANDBOX]
    userid = request.query.get("userid", "")
    redirect_uri = request.query.get("redirect_uri", "")
    if (userid != OUTSIDER and userid not in sandbox.config.users) or not redirect_uri.startswith(("http://",
                                                                                                    "https://")):
        return _page("参数错误", "<h1>参数错误</h1><p>没有这个成员。</p>", status=400)
    code = issue_login_code(sandbox, userid)
    raise web.HTTPFound(_with_query(redirect_uri, code=code, state=request.query.get("state", "")))


async def _getuserinfo(request: web.Request, sandbox: Sandbox) -> JSON:
    return redeem_login_code(sandbox, request.query.get("code"))


routes.get("/cgi-bin/auth/getuserinfo")(_authed(_getuserinfo))
