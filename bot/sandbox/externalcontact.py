"""Customer contact (客户联系) in the sandbox: customers per member of staff, the add/del callbacks, mass-message
tasks that wait for the sender's confirmation, the per-customer receive quota (status 3), non-friends (status 2)
and the reminder limit (3 per message per 24 h)."""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from bot.sandbox.api import SANDBOX, _authed, _json
from bot.sandbox.records import JSON, ApiError, CallbackOutcome
from bot.sandbox.user import Sandbox, cdata

routes = web.RouteTableDef()
REMIND_LIMIT = 3
REMIND_WINDOW = timedelta(hours=24)
ERR_REMIND_LIMIT = 41063  # (unconfirmed) WeCom's code for "reminded too often"
ERR_BAD_MSGID = 41062  # (unconfirmed) unknown msgid


@dataclass
class MsgTask:
    """One add_msg_template task: nothing is sent until its sender confirms it."""

    msgid: str
    sender: str
    external_userids: list[str]
    text: str
    created_at: datetime
    confirmed_at: datetime | None = None
    reminders: list[datetime] = field(default_factory=list)
    results: dict[str, int] = field(default_factory=dict)  # external_userid -> 1 sent, 2 not a friend, 3 quota


@dataclass
class ExternalContacts:
    """The tenant's customer-contact state; quota = how many mass messages one customer receives per window."""

    contacts: dict[str, dict[str, str]] = field(default_factory=dict)  # staff userid -> {external_userid: name}
    tasks: dict[str, MsgTask] = field(default_factory=dict)
    received: dict[str, list[datetime]] = field(default_factory=dict)  # external_userid -> receive times
    quota: int = 1
    quota_window: timedelta = timedelta(days=1)
    counter: int = 0

    def is_friend(self, sender: str, external_userid: str) -> bool:
        return external_userid in self.contacts.get(sender, {})


_STATE: weakref.WeakKeyDictionary[Sandbox, ExternalContacts] = weakref.WeakKeyDictionary()


def contacts_of(sandbox: Sandbox) -> ExternalContacts:
    state = _STATE.get(sandbox)
    if state is None:
        state = _STATE[sandbox] = ExternalContacts()
    return state


async def _callback(sandbox: Sandbox, change: str, userid: str, external_userid: str, state: str) -> CallbackOutcome:
    created = sandbox._create_time("sys")  # nudged per second like every sandbox event (bots dedupe on it)
    inner = (f"<ToUserName>{cdata(sandbox.config.corp_id)}</ToUserName><FromUserName>{cdata('sys')}</FromUserName>"
             f"<CreateTime>{created}</CreateTime><MsgType>{cdata('event')}</MsgType>"
             f"<Event>{cdata('change_external_contact')}</Event><ChangeType>{cdata(change)}</ChangeType>"
             f"<UserID>{cdata(userid)}</UserID><ExternalUserID>{cdata(external_userid)}</ExternalUserID>"
             f"<State>{cdata(state)}</State><WelcomeCode>{cdata('')}</WelcomeCode>")
    return await sandbox._deliver(inner)


async def customer_adds(sandbox: Sandbox, userid: str, external_userid: str, *, name: str = "",
                        state: str = "") -> CallbackOutcome:
    """A customer adds a member of staff (state: the contact way's state, e.g. a member id)."""
    contacts_of(sandbox).contacts.setdefault(userid, {})[external_userid] = name or external_userid
    return await _callback(sandbox, "add_external_contact", userid, external_userid, state)


async def customer_deletes(sandbox: Sandbox, userid: str, external_userid: str) -> CallbackOutcome:
    """The customer deletes the member of staff (del_follow_user): no longer reachable through them."""
    contacts_of(sandbox).contacts.get(userid, {}).pop(external_userid, None)
    return await _callback(sandbox, "del_follow_user", userid, external_userid, "")


def confirm(sandbox: Sandbox, msgid: str) -> MsgTask:
    """The sender taps 发送 in the WeCom client: each customer gets it, unless not a friend or over quota."""
    state = contacts_of(sandbox)
    task = state.tasks.get(msgid)
    if task is None:
        raise ApiError(ERR_BAD_MSGID, f"invalid msgid: {msgid}")
    if task.confirmed_at is not None:
        return task
    now = sandbox.clock.now()
    task.confirmed_at = now
    for ext in task.external_userids:
        if not state.is_friend(task.sender, ext):
            task.results[ext] = 2
            continue
        recent = [t for t in state.received.get(ext, []) if now - t < state.quota_window]
        if len(recent) >= state.quota:
            task.results[ext] = 3
            continue
        state.received.setdefault(ext, []).append(now)
        task.results[ext] = 1
    return task


def pending_for(sandbox: Sandbox, userid: str) -> list[MsgTask]:
    return [t for t in contacts_of(sandbox).tasks.values() if t.sender == userid and t.confirmed_at is None]


def _task(sandbox: Sandbox, body: JSON) -> MsgTask:
    task = contacts_of(sandbox).tasks.get(str(body.get("msgid", "")))
    if task is None:
        raise ApiError(ERR_BAD_MSGID, f"invalid msgid: {body.get('msgid')}")
    return task


async def _add_msg_template(request: web.Request, sandbox: Sandbox) -> JSON:
    body = await _json(request)
    sender = body.get("sender")
    ids = body.get("external_userid")
    text = body.get("text")
    if body.get("chat_type", "single") != "single":
        raise ApiError(40058, "invalid parameter: only chat_type single is simulated")
    if not isinstance(sender, str) or sender not in sandbox.config.users:
        raise ApiError(60111, f"userid not found: {sender}")
    if not isinstance(ids, list) or not ids or len(ids) > 10_000 or not all(isinstance(i, str) for i in ids):
        raise ApiError(40058, "invalid parameter: external_userid holds 1 to 10000 ids")
    if not isinstance(text, dict) or not isinstance(text.get("content"), str) or not text["content"]:
        raise ApiError(40058, "invalid parameter: text.content is required")
    state = contacts_of(sandbox)
    state.counter += 1
    msgid = f"msgSB{state.counter:08d}"
    fail_list = [i for i in ids if not i.startswith("wm")]  # not an external_userid at all
    good = [i for i in dict.fromkeys(ids) if i.startswith("wm")]
    state.tasks[msgid] = MsgTask(msgid, sender, good, text["content"], sandbox.clock.now())
    return {"errcode": 0, "errmsg": "ok", "msgid": msgid, "fail_list": fail_list}


async def _get_task(request: web.Request, sandbox: Sandbox) -> JSON:
    task = _task(sandbox, await _json(request))
    sent = task.confirmed_at is not None
    item: dict[str, Any] = {"userid": task.sender, "status": 2 if sent else 0}
    if sent and task.confirmed_at is not None:
        item["send_time"] = int(task.confirmed_at.timestamp())
    return {"errcode": 0, "errmsg": "ok", "next_cursor": "", "task_list": [item]}


async def _send_result(request: web.Request, sandbox: Sandbox) -> JSON:
    body = await _json(request)
    task = _task(sandbox, body)
    if body.get("userid") not in (None, task.sender):
        return {"errcode": 0, "errmsg": "ok", "next_cursor": "", "send_list": []}
    rows = []
    for ext in task.external_userids:
        status = task.results.get(ext, 0)
        row: dict[str, Any] = {"external_userid": ext, "chat_id": "", "userid": task.sender, "status": status}
        if status == 1 and task.confirmed_at is not None:
            row["send_time"] = int(task.confirmed_at.timestamp())
        rows.append(row)
    return {"errcode": 0, "errmsg": "ok", "next_cursor": "", "send_list": rows}


async def _remind(request: web.Request, sandbox: Sandbox) -> JSON:
    task = _task(sandbox, await _json(request))
    now = sandbox.clock.now()
    recent = [t for t in task.reminders if now - t < REMIND_WINDOW]
    if len(recent) >= REMIND_LIMIT:
        raise ApiError(ERR_REMIND_LIMIT, "remind times exceed the limit of 3 per 24 hours")
    task.reminders.append(now)
    return {"errcode": 0, "errmsg": "ok"}


routes.post("/cgi-bin/externalcontact/add_msg_template")(_authed(_add_msg_template))
routes.post("/cgi-bin/externalcontact/get_groupmsg_task")(_authed(_get_task))
routes.post("/cgi-bin/externalcontact/get_groupmsg_send_result")(_authed(_send_result))
routes.post("/cgi-bin/externalcontact/remind_groupmsg_send")(_authed(_remind))


@routes.get("/sandbox/api/groupmsg")
async def list_tasks(request: web.Request) -> web.Response:
    """The phone page: mass-message tasks waiting for this user's confirmation."""
    sandbox = request.app[SANDBOX]
    userid = request.query.get("userid", "")
    return web.json_response({"tasks": [
        {"msgid": t.msgid, "text": t.text, "customers": len(t.external_userids)} for t in pending_for(sandbox, userid)
    ]})


@routes.post("/sandbox/api/groupmsg/confirm")
async def confirm_route(request: web.Request) -> web.Response:
    """The phone page's 确认发送 button for one task."""
    sandbox = request.app[SANDBOX]
    try:
        body = await _json(request)
        task = confirm(sandbox, str(body.get("msgid", "")))
    except ApiError as err:
        return web.json_response({"error": err.errmsg}, status=400)
    return web.json_response({"msgid": task.msgid, "results": task.results})
