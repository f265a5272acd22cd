"""Customer contact (客户联系) calls on the project's WeCom client: mass-message tasks, their results, reminders."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.wecom.client import WeComClient


@dataclass(frozen=True)
class SendResult:
    external_userid: str
    status: int  # 0 not sent yet, 1 sent, 2 not a friend, 3 the customer's receive quota is used up


async def add_msg_template(client: WeComClient, sender: str, external_userids: list[str], text: str) -> str:
    """Create one task for `sender` (≤ 10,000 customers); nothing goes out until they confirm it. Returns msgid."""
    body = {"chat_type": "single", "external_userid": external_userids, "sender": sender, "text": {"content": text}}
    data = await client._post("/cgi-bin/externalcontact/add_msg_template", body)
    return str(data["msgid"])


async def task_confirmed(client: WeComClient, msgid: str) -> bool:
    """get_groupmsg_task: has the sender confirmed (status 2)?"""
    data = await client._post("/cgi-bin/externalcontact/get_groupmsg_task", {"msgid": msgid, "limit": 1000})
    items: list[dict[str, Any]] = data.get("task_list") or []
    return any(int(item.get("status", 0)) == 2 for item in items)


async def send_results(client: WeComClient, msgid: str, sender: str) -> list[SendResult]:
    """get_groupmsg_send_result, every page."""
    out: list[SendResult] = []
    cursor = ""
    while True:
        body: dict[str, Any] = {"msgid": msgid, "userid": sender, "limit": 1000}
        if cursor:
            body["cursor"] = cursor
        data = await client._post("/cgi-bin/externalcontact/get_groupmsg_send_result", body)
        out.extend(SendResult(str(r["external_userid"]), int(r.get("status", 0))) for r in data.get("send_list") or [])
        cursor = str(data.get("next_cursor") or "")
        if not cursor:
            return out


async def remind(client: WeComClient, msgid: str) -> None:
    """remind_groupmsg_send: at most 3 times per message per 24 hours (the caller keeps count)."""
    await client._post("/cgi-bin/externalcontact/remind_groupmsg_send", {"msgid": msgid})
