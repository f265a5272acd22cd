"""The phone page: static files at / and the small JSON API (/sandbox/api/...) it polls and posts to."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web

from bot.sandbox.api import SANDBOX
from bot.sandbox.records import ApiError, CallbackOutcome, Delivered, SandboxError, UserSent
from bot.sandbox.user import Sandbox

STATIC = Path(__file__).parent / "static"
routes = web.RouteTableDef()


def _sandbox(request: web.Request) -> Sandbox:
    return request.app[SANDBOX]


def _bot_item(d: Delivered) -> dict[str, Any]:
    item: dict[str, Any] = {"seq": d.seq, "side": "bot", "kind": d.msgtype, "channel": d.channel, "to": d.to,
                            "at": d.at.isoformat()}
    section = d.payload.get(d.msgtype)
    if d.msgtype in ("text", "markdown") and isinstance(section, dict):
        item["text"] = str(section.get("content", ""))
    elif d.msgtype == "textcard" and isinstance(section, dict):
        item["card"] = {"title": section.get("title", ""), "desc": section.get("description", ""),
                        "rows": [], "buttons": [], "replace_name": None}
    elif d.msgtype == "template_card":
        card = d.card
        main = card.get("main_title") or {}
        rows = [[str(r.get("keyname", "")), str(r.get("value", ""))]
                for r in card.get("horizontal_content_list") or [] if isinstance(r, dict)]
        item["card"] = {
            "title": main.get("title", ""), "desc": main.get("desc", "") or card.get("sub_title_text", ""),
            "rows": rows, "buttons": [
                {"text": str(b.get("text", "")), "key": str(b.get("key", "")), "style": int(b.get("style", 1))}
                for b in card.get("button_list") or [] if isinstance(b, dict) and d.replace_name is None
            ],
            "replace_name": d.replace_name, "task_id": d.task_id,
        }
    elif d.msgtype == "image" and isinstance(section, dict):
        item["media_id"] = section.get("media_id", "")
    else:
        item["text"] = f"[{d.msgtype}]"
    return item


def _user_item(u: UserSent) -> dict[str, Any]:
    return {"seq": u.seq, "side": "me", "kind": u.kind, "text": u.summary, "at": u.at.isoformat(),
            "status": u.status, "media_id": u.media_id}


def chat_items(sandbox: Sandbox, userid: str) -> list[dict[str, Any]]:
    """The user's chat, bot and user messages in the order they happened."""
    items = [_bot_item(d) for d in sandbox.messages_for(userid)]
    items += [_user_item(u) for u in sandbox.user_sent if u.userid == userid]
    return sorted(items, key=lambda i: int(i["seq"]))


def _outcome(outcome: CallbackOutcome) -> web.Response:
    return web.json_response({"ok": outcome.ok, "status": outcome.status, "tries": outcome.tries})


def _refused(text: str, status: int = 400) -> web.Response:
    return web.json_response({"ok": False, "error": text}, status=status)


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        body = None
    return body if isinstance(body, dict) else {}


def _user(sandbox: Sandbox, body: dict[str, Any]) -> str:
    userid = str(body.get("user", ""))
    if userid not in sandbox.config.users:
        raise SandboxError("请先选择一个用户")
    if not sandbox.config.callback_url:
        raise SandboxError("沙盒没有配置机器人的回调地址")
    return userid


@routes.get("/")
async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "phone.html")


@routes.get("/sandbox/api/users")
async def users(request: web.Request) -> web.Response:
    sandbox = _sandbox(request)
    return web.json_response({
        "corp_name": sandbox.config.corp_name,
        "users": [{"userid": u, "name": n} for u, n in sandbox.config.users.items()],
    })


@routes.get("/sandbox/api/chat")
async def chat(request: web.Request) -> web.Response:
    sandbox = _sandbox(request)
    userid = request.query.get("user", "")
    if userid not in sandbox.config.users:
        return _refused("没有这个用户", 404)
    return web.json_response({"user": userid, "items": chat_items(sandbox, userid)})


@routes.post("/sandbox/api/text")
async def send_text(request: web.Request) -> web.Response:
    sandbox = _sandbox(request)
    body = await _body(request)
    text = str(body.get("text", "")).strip()
    try:
        if not text:
            raise SandboxError("请输入要发送的内容")
        return _outcome(await sandbox.user_text(_user(sandbox, body), text))
    except SandboxError as err:
        return _refused(str(err))


@routes.post("/sandbox/api/click")
async def click(request: web.Request) -> web.Response:
    sandbox = _sandbox(request)
    body = await _body(request)
    try:
        userid = _user(sandbox, body)
        seq = int(body.get("seq", 0) or 0)
        card = next((d for d in sandbox.cards_for(userid) if d.seq == seq), None)
        return _outcome(await sandbox.user_click(userid, str(body.get("key", "")), card=card))
    except (SandboxError, ValueError) as err:
        return _refused(str(err))


@routes.post("/sandbox/api/location")
async def location(request: web.Request) -> web.Response:
    sandbox = _sandbox(request)
    body = await _body(request)
    try:
        userid = _user(sandbox, body)
        lat, lng = float(body.get("lat", "")), float(body.get("lng", ""))
        if not (-90 <= lat <= 90 and -180 <= lng <= 180):
            raise SandboxError("经纬度超出范围")
        return _outcome(await sandbox.user_location(userid, lat, lng, label=str(body.get("label", ""))))
    except (SandboxError, ValueError) as err:
        return _refused(str(err))


@routes.post("/sandbox/api/photo")
async def photo(request: web.Request) -> web.Response:
    """multipart with user (+ optional photo file), or JSON {user} for the built-in sample JPEG."""
    sandbox = _sandbox(request)
    jpeg: bytes | None = None
    body: dict[str, Any] = {}
    if request.content_type.startswith("multipart/"):
        form = await request.post()
        body["user"] = form.get("user", "")
        upload = form.get("photo")
        if isinstance(upload, web.FileField):
            jpeg = upload.file.read()
    else:
        body = await _body(request)
    try:
        return _outcome(await sandbox.user_image(_user(sandbox, body), jpeg or None))
    except SandboxError as err:
        return _refused(str(err))
    except ApiError as err:
        return _refused(f"图片不能用：{err.errmsg}")


@routes.get("/sandbox/api/menu")
async def menu(request: web.Request) -> web.Response:
    """The app menu the bot created (menu/create), flattened to the buttons a user can press."""
    sandbox = _sandbox(request)
    created = sandbox.menus.get(sandbox.config.agent_id, {})
    leaves = [
        {"name": str(leaf.get("name", "")), "type": str(leaf["type"]), "key": str(leaf.get("key", "")),
         "url": str(leaf.get("url", ""))}
        for button in created.get("button") or []
        for leaf in button.get("sub_button") or [button]
        if isinstance(leaf, dict) and leaf.get("type")
    ]
    return web.json_response({"buttons": leaves})


@routes.post("/sandbox/api/menu")
async def press_menu(request: web.Request) -> web.Response:
    """A menu press: a click event, or a scan (scancode_waitmsg / scancode_push) carrying the typed barcode."""
    sandbox = _sandbox(request)
    body = await _body(request)
    key, kind = str(body.get("key", "")), str(body.get("type", "click"))
    try:
        userid = _user(sandbox, body)
        if kind.startswith("scancode_"):
            result = str(body.get("result", "")).strip()
            if not result:
                raise SandboxError("请输入条码")
            outcome = await sandbox.user_scan(userid, key, result, waitmsg=kind == "scancode_waitmsg")
        else:
            outcome = await sandbox.user_menu_click(userid, key)
        return _outcome(outcome)
    except SandboxError as err:
        return _refused(str(err))


@routes.get("/sandbox/pic/{media_id}")
async def picture(request: web.Request) -> web.Response:
    """Images by id, for PicUrl and for the phone page (no token: like WeCom's short-lived picture links)."""
    try:
        media = _sandbox(request).get_media(request.match_info["media_id"])
    except ApiError:
        raise web.HTTPNotFound() from None
    return web.Response(body=media.content, content_type=media.content_type)
