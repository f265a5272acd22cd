"""Decrypted callback XML → a flat dict (what the inbox stores) → a typed event from bot/events.py."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Any
from xml.etree.ElementTree import Element

from bot.errors import MalformedCallback
from bot.events import (
    CardClick,
    EnterAgent,
    Event,
    ExternalContactChange,
    ImageMessage,
    LocationMessage,
    LocationReport,
    MenuClick,
    OtherEvent,
    ScanCode,
    SelectedItem,
    TextMessage,
)
from bot.wecom.crypto import parse_xml

# (container, item): xmltodict gives one item as a dict and several as a list; these are always lists here.
_LIST_ITEMS = {("SelectedItems", "SelectedItem"), ("OptionIds", "OptionId"), ("PicList", "item")}


def _element(node: Element) -> Any:
    children = list(node)
    if not children:
        return (node.text or "").strip()
    out: dict[str, Any] = {}
    for child in children:
        value = _element(child)
        if child.tag in out:
            prev = out[child.tag]
            out[child.tag] = [*prev, value] if isinstance(prev, list) else [prev, value]
        elif (node.tag, child.tag) in _LIST_ITEMS:
            out[child.tag] = [value]
        else:
            out[child.tag] = value
    return out


def message_dict(plaintext: bytes | str) -> dict[str, Any]:
    """The decrypted `<xml>...</xml>` as a dict of its children; nested elements stay nested, lists normalised."""
    root = parse_xml(plaintext)
    try:
        data = _element(root)
    except RecursionError as err:  # WeCom nests two levels at most; thousands is an attack
        raise MalformedCallback("elements nested too deeply") from err
    if not isinstance(data, dict):
        raise MalformedCallback("the message has no fields")
    for key in ("FromUserName", "CreateTime", "MsgType"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise MalformedCallback(f"missing {key}")
    if not re.fullmatch(r"[0-9]{1,11}", data["CreateTime"]):
        raise MalformedCallback(f"CreateTime {data['CreateTime'][:20]!r} is not a number")
    if len(data["FromUserName"]) > 64:
        raise MalformedCallback("FromUserName longer than 64 characters")
    return data


def dedupe_key(d: dict[str, Any]) -> str:
    """`msg:<MsgId>` for messages; for events `evt:<FromUserName>:<CreateTime>:<Event>:<hash>`, the hash over the
    whole decrypted message. WeCom retries an event as the same XML, so a retry gets the same key, while two
    different events of one user in the same second (two approvals, two contact changes) differ in some field
    (EventKey, TaskId, ResponseCode, ChangeType, UserID, ...) and are both kept."""
    msg_id = d.get("MsgId")
    if isinstance(msg_id, str) and msg_id:
        return f"msg:{msg_id}"[:191]
    digest = hashlib.sha256(json.dumps(d, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:32]
    return f"evt:{d['FromUserName'][:64]}:{d['CreateTime']}:{_text(d, 'Event')[:48]}:{digest}"


def event_name(d: dict[str, Any]) -> str | None:
    if d.get("MsgType") != "event":
        return None
    return _text(d, "Event") or None


def _text(d: dict[str, Any], key: str) -> str:
    value = d.get(key, "")
    return value if isinstance(value, str) else ""


def _float(d: dict[str, Any], key: str) -> float:
    try:
        return float(_text(d, key))
    except ValueError as err:
        raise MalformedCallback(f"{key} is not a number") from err


def _int(d: dict[str, Any], key: str, default: int | None = None) -> int:
    raw = _text(d, key)
    if not raw and default is not None:
        return default
    try:
        return int(raw)
    except ValueError as err:
        raise MalformedCallback(f"{key} is not an integer") from err


def _as_list(value: Any) -> list[Any]:
    if value is None or value == "":
        return []
    return value if isinstance(value, list) else [value]


def _selected(d: dict[str, Any]) -> tuple[SelectedItem, ...]:
    container = d.get("SelectedItems")
    if not isinstance(container, dict):
        return ()
    items = []
    for item in _as_list(container.get("SelectedItem")):
        if not isinstance(item, dict):
            continue
        ids = item.get("OptionIds")
        options = _as_list(ids.get("OptionId")) if isinstance(ids, dict) else []
        items.append(SelectedItem(_text(item, "QuestionKey"), tuple(str(o) for o in options)))
    return tuple(items)


def to_event(d: dict[str, Any]) -> Event:
    """The typed event for a message dict; anything unknown becomes OtherEvent, nothing is dropped."""
    agent = _text(d, "AgentID")
    base: dict[str, Any] = {
        "from_user": d["FromUserName"],
        "create_time": datetime.fromtimestamp(int(d["CreateTime"]), UTC),
        "agent_id": int(agent) if re.fullmatch(r"[0-9]{1,10}", agent) else None,
    }
    msg_type = _text(d, "MsgType")
    if msg_type == "text":
        return TextMessage(**base, content=_text(d, "Content"), msg_id=_text(d, "MsgId"))
    if msg_type == "image":
        return ImageMessage(
            **base, pic_url=_text(d, "PicUrl"), media_id=_text(d, "MediaId"), msg_id=_text(d, "MsgId")
        )
    if msg_type == "location":
        return LocationMessage(
            **base, latitude=_float(d, "Location_X"), longitude=_float(d, "Location_Y"),
            scale=_int(d, "Scale", 0), label=_text(d, "Label"), msg_id=_text(d, "MsgId"),
        )
    event = _text(d, "Event")
    name = event.lower()
    if msg_type != "event":
        return OtherEvent(**base, msg_type=msg_type, event=None, raw=d)
    if name == "location":
        return LocationReport(
            **base, latitude=_float(d, "Latitude"), longitude=_float(d, "Longitude"),
            precision=_float(d, "Precision") if _text(d, "Precision") else 0.0,
        )
    if name == "enter_agent":
        return EnterAgent(**base)
    if name in ("click", "view"):
        return MenuClick(**base, key=_text(d, "EventKey"))
    if name in ("scancode_push", "scancode_waitmsg"):
        info = d.get("ScanCodeInfo")
        info = info if isinstance(info, dict) else {}
        return ScanCode(
            **base, key=_text(d, "EventKey"), scan_type=_text(info, "ScanType"),
            scan_result=_text(info, "ScanResult"), wait_msg=name == "scancode_waitmsg",
        )
    if name == "template_card_event":
        return CardClick(
            **base, key=_text(d, "EventKey"), task_id=_text(d, "TaskId"), card_type=_text(d, "CardType"),
            response_code=_text(d, "ResponseCode"), selected=_selected(d),
        )
    if name == "change_external_contact":
        return ExternalContactChange(
            **base, change_type=_text(d, "ChangeType"), user_id=_text(d, "UserID"),
            external_userid=_text(d, "ExternalUserID"), state=_text(d, "State"), welcome_code=_text(d, "WelcomeCode"),
        )
    return OtherEvent(**base, msg_type=msg_type, event=event or None, raw=d)
