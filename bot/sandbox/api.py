"""The /cgi-bin routes: WeCom's HTTP shapes, token checks and injected faults around the Sandbox's methods."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import BodyPartReader, web

from bot.sandbox.limits import MEDIA_TYPES
from bot.sandbox.records import JSON, ApiError, error_body
from bot.sandbox.user import Sandbox

SANDBOX: web.AppKey[Sandbox] = web.AppKey("sandbox")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
routes = web.RouteTableDef()


def _sandbox(request: web.Request) -> Sandbox:
    return request.app[SANDBOX]


def _error(request: web.Request, err: ApiError) -> web.Response:
    hint = f"{int(_sandbox(request).clock.now().timestamp())}-{secrets.token_hex(4)}"
    return web.json_response(error_body(err.errcode, err.errmsg, hint, request.remote or "127.0.0.1"))


async def _json(request: web.Request) -> JSON:
    """The body as JSON whatever the Content-Type (wechatpy sends none)."""
    raw = await request.read()
    try:
        body = json.loads(raw.decode("utf-8")) if raw else None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ApiError(47001, "data format error") from err
    if not isinstance(body, dict):
        raise ApiError(47001, "data format error")
    return body


def _authed(handler: Callable[[web.Request, Sandbox], Awaitable[JSON]]) -> Handler:
    """Check access_token, then answer the handler's dict as JSON; ApiError becomes WeCom's error shape."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        sandbox = _sandbox(request)
        try:
            sandbox.check_token(request.query.get("access_token"))
            return web.json_response(await handler(request, sandbox))
        except ApiError as err:
            return _error(request, err)

    return wrapped


@web.middleware
async def faults(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Injected faults on the API: HTTP 502 or errcode -1 before anything happens (nothing is delivered), and slow
    answers after the work is done (a client that times out and retries must rely on the duplicate check)."""
    if not request.path.startswith("/cgi-bin/"):
        return await handler(request)
    sandbox = _sandbox(request)
    if not sandbox.config.public_url:
        sandbox.config.public_url = f"{request.scheme}://{request.host}"
    fault, slow = sandbox.draw_fault()
    slow = slow and (not sandbox.config.slow_paths or request.path in sandbox.config.slow_paths)
    if fault == "http_502":
        response: web.StreamResponse = web.Response(status=502, text="<html><body>502 Bad Gateway</body></html>",
                                                    content_type="text/html")
    elif fault == "errcode":
        response = _error(request, ApiError(-1, "system busy"))
    else:
        response = await handler(request)
    if slow and sandbox.slow_hold is not None:  # a test holds the answer until it lets it go
        sandbox.slow_holding.set()
        await sandbox.slow_hold.wait()
    elif slow:
        await asyncio.sleep(sandbox.config.slow_seconds)
    return response


@routes.get("/cgi-bin/gettoken")
async def gettoken(request: web.Request) -> web.Response:
    try:
        body = _sandbox(request).get_token(request.query.get("corpid", ""), request.query.get("corpsecret", ""))
    except ApiError as err:
        return _error(request, err)
    return web.json_response(body)


async def _message_send(request: web.Request, sandbox: Sandbox) -> JSON:
    return sandbox.send_message(await _json(request))


async def _update_card(request: web.Request, sandbox: Sandbox) -> JSON:
    return sandbox.update_card(await _json(request))


async def _chat_send(request: web.Request, sandbox: Sandbox) -> JSON:
    return sandbox.chat_send(await _json(request))


async def _chat_create(request: web.Request, sandbox: Sandbox) -> JSON:
    return sandbox.chat_create(await _json(request))


async def _user_get(request: web.Request, sandbox: Sandbox) -> JSON:
    userid = request.query.get("userid", "")
    if userid not in sandbox.config.users:
        raise ApiError(60111, f"userid not found: {userid}")
    return {"errcode": 0, "errmsg": "ok", "userid": userid, "name": sandbox.config.users[userid],
            "department": [1], "main_department": 1, "position": "", "status": 1, "enable": 1}


async def _department_list(request: web.Request, sandbox: Sandbox) -> JSON:
    wanted = request.query.get("id", "")
    if wanted not in ("", "1"):
        raise ApiError(60123, f"invalid party id: {wanted}")
    return {"errcode": 0, "errmsg": "ok",
            "department": [{"id": 1, "name": sandbox.config.corp_name, "parentid": 0, "order": 100000000}]}


async def _menu_create(request: web.Request, sandbox: Sandbox) -> JSON:
    if request.query.get("agentid", "") != str(sandbox.config.agent_id):
        raise ApiError(40056, "invalid agentid")
    body = await _json(request)
    buttons = body.get("button")
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
        raise ApiError(40058, "invalid parameter: button holds 1 to 3 items")
    for button in buttons:
        subs = button.get("sub_button") if isinstance(button, dict) else None
        if not isinstance(button, dict) or not button.get("name") or (subs is not None and len(subs) > 5):
            raise ApiError(40058, "invalid parameter: each button needs a name and at most 5 sub_button")
    sandbox.menus[sandbox.config.agent_id] = body
    return {"errcode": 0, "errmsg": "ok"}


async def _media_upload(request: web.Request, sandbox: Sandbox) -> JSON:
    kind = request.query.get("type", "")
    if kind not in MEDIA_TYPES:
        raise ApiError(40004, f"invalid media type: {kind}")
    if not request.content_type.startswith("multipart/"):
        raise ApiError(41005, "media data missing")
    reader = await request.multipart()
    async for part in reader:
        if isinstance(part, BodyPartReader) and part.name == "media":
            content = await part.read(decode=False)
            filename = part.filename or "media"
            content_type = part.headers.get("Content-Type", "application/octet-stream")
            media = sandbox.store_media(kind, filename, content_type, bytes(content))
            return {"errcode": 0, "errmsg": "ok", "type": kind, "media_id": media.media_id,
                    "created_at": str(int(media.created_at.timestamp()))}
    raise ApiError(41005, "media data missing")


routes.post("/cgi-bin/message/send")(_authed(_message_send))
routes.post("/cgi-bin/message/update_template_card")(_authed(_update_card))
routes.post("/cgi-bin/appchat/send")(_authed(_chat_send))
routes.post("/cgi-bin/appchat/create")(_authed(_chat_create))
routes.get("/cgi-bin/user/get")(_authed(_user_get))
routes.get("/cgi-bin/department/list")(_authed(_department_list))
routes.post("/cgi-bin/menu/create")(_authed(_menu_create))
routes.post("/cgi-bin/media/upload")(_authed(_media_upload))


@routes.get("/cgi-bin/media/get")
async def media_get(request: web.Request) -> web.Response:
    sandbox = _sandbox(request)
    try:
        sandbox.check_token(request.query.get("access_token"))
        media = sandbox.get_media(request.query.get("media_id", ""))
    except ApiError as err:
        return _error(request, err)
    if sandbox.config.media_slow_seconds > 0:  # a slow download: the bytes come, but late
        await asyncio.sleep(sandbox.config.media_slow_seconds)
    if sandbox.media_hold is not None:  # a test holds downloads until it lets them go
        await sandbox.media_hold.wait()
    return web.Response(body=media.content, headers={
        "Content-Type": media.content_type,
        "Content-disposition": f'attachment; filename="{media.filename}"',
        "Cache-Control": "no-cache, must-revalidate",
    })


@routes.post("/cgi-bin/webhook/send")
async def webhook_send(request: web.Request) -> web.Response:
    """Group robots authenticate by key, not access_token."""
    try:
        body: Any = await _json(request)
        return web.json_response(_sandbox(request).robot_send(request.query.get("key", ""), body))
    except ApiError as err:
        return _error(request, err)
