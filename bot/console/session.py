"""Console sessions: a signed, expiring, HttpOnly cookie naming one person, and the CSRF token that goes with it.

The cookie is `<userid, base64url>~<bot.signing value>` signed under a key derived for that person, so a value
cannot be moved to another userid. Every request looks the person up again (`models.viewer.viewer_for`): someone
made inactive in the directory loses the console at once, whatever their cookie says.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from datetime import datetime, timedelta
from urllib.parse import quote

from aiohttp import web

from bot import signing
from bot.config import Settings
from bot.keys import CLOCK, SESSIONS, SETTINGS
from models.viewer import Viewer, viewer_for

COOKIE = "storebot_console"
COOKIE_PATH = "/console"
EXPORT_PREFIX = "/console/export/"
VIEWER = web.RequestKey("console_viewer", Viewer)


def _secret(settings: Settings) -> str:
    server = settings.server
    return server.session_secret.get_secret_value() or server.admin_token.get_secret_value()


def _key(settings: Settings, userid: str) -> bytes:
    return signing.derive_key(_secret(settings), f"console-session/{userid}")


def _encode(userid: str) -> str:
    return base64.urlsafe_b64encode(userid.encode()).rstrip(b"=").decode()


def _decode(text: str) -> str | None:
    if not text or len(text) > 100:
        return None
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def session_lifetime(settings: Settings) -> timedelta:
    return timedelta(hours=settings.console.session_hours)


def secure_cookies(settings: Settings) -> bool:
    return settings.server.public_url.startswith("https://")


def session_value(settings: Settings, userid: str, now: datetime) -> str:
    """The cookie value of a new session for `userid` (tests use it to sign someone in directly)."""
    return f"{_encode(userid)}~{signing.issue(_key(settings, userid), now, session_lifetime(settings))}"


def issue_session(request: web.Request, response: web.StreamResponse, userid: str) -> None:
    """A new session for `userid` in an HttpOnly, SameSite=Lax cookie (Secure when the public URL is https)."""
    settings = request.app[SETTINGS]
    lifetime = session_lifetime(settings)
    value = session_value(settings, userid, request.app[CLOCK].now())
    response.set_cookie(COOKIE, value, path=COOKIE_PATH, max_age=int(lifetime.total_seconds()), httponly=True,
                        samesite="Lax", secure=secure_cookies(settings))


def end_session(response: web.StreamResponse) -> None:
    response.del_cookie(COOKIE, path=COOKIE_PATH)


def session_userid(request: web.Request) -> str | None:
    """The userid a valid, unexpired session cookie names; None for none, forged, truncated or expired."""
    raw = request.cookies.get(COOKIE, "")
    head, sep, value = raw.partition("~")
    userid = _decode(head) if sep else None
    if userid is None:
        return None
    settings = request.app[SETTINGS]
    return userid if signing.valid(_key(settings, userid), value, request.app[CLOCK].now()) else None


async def current_viewer(request: web.Request) -> Viewer | None:
    """The person this request's session names, if the session is valid and they are still active."""
    if VIEWER in request:
        return request[VIEWER]
    userid = session_userid(request)
    if userid is None:
        return None
    async with request.app[SESSIONS]() as session:
        viewer = await viewer_for(session, userid)
    if viewer is not None:
        request[VIEWER] = viewer
    return viewer


async def require_viewer(request: web.Request) -> Viewer:
    """The signed-in person, or: 401 for an export, a redirect to the login for a page."""
    viewer = await current_viewer(request)
    if viewer is not None:
        return viewer
    if request.path.startswith(EXPORT_PREFIX):
        raise web.HTTPUnauthorized(text="请先登录控制台", content_type="text/plain")
    target = request.path_qs if request.method == "GET" else "/console"
    raise web.HTTPFound(f"/console/login?next={quote(target, safe='')}")


def csrf_token(request: web.Request) -> str:
    """A token tied to this session's cookie: forms carry it, POST handlers check it (`check_csrf`)."""
    raw = request.cookies.get(COOKIE, "")
    key = signing.derive_key(_secret(request.app[SETTINGS]), "console-csrf")
    return hmac.new(key, raw.encode(), hashlib.sha256).hexdigest()[:32]


def check_csrf(request: web.Request, given: str | None) -> None:
    """Refuse a POST whose form token does not match the session (403)."""
    if not given or not hmac.compare_digest(given.encode(), csrf_token(request).encode()):
        raise web.HTTPForbidden(text="表单已过期，请返回刷新页面后再提交。", content_type="text/plain")
