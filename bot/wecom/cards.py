"""Builders for WeCom template cards, checked against WeCom's limits before they are queued."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

TASK_ID = re.compile(r"^[0-9a-zA-Z_\-@]{1,128}$")
MAX_ROWS = 6
MAX_BUTTONS = 6


def card_task_id(kind: str, ident: object, *parts: object) -> str:
    """A WeCom card task_id, unique per app: e.g. card_task_id("transfer", 17, "approve", "u1")."""
    raw = "-".join(str(p) for p in (kind, ident, *parts))
    safe = re.sub(r"[^0-9a-zA-Z_\-@]", "_", raw)[:128]
    if not TASK_ID.match(safe):
        raise ValueError(f"cannot build a card task_id from {raw!r}")
    return safe


def _clip(text: str, limit_bytes: int) -> str:
    data = text.encode()
    if len(data) <= limit_bytes:
        return text
    return data[: limit_bytes - 3].decode(errors="ignore") + "…"


def button_card(
    *,
    task_id: str,
    title: str,
    desc: str = "",
    rows: Sequence[tuple[str, str]] = (),
    buttons: Sequence[tuple[str, str, int]] = (),
    sub_title: str = "",
    source: str = "门店助手",
    url: str | None = None,
) -> dict[str, Any]:
    """A button_interaction card: rows are (label, value); buttons are (text, key, style 1-4)."""
    if not TASK_ID.match(task_id):
        raise ValueError(f"invalid card task_id {task_id!r}")
    if len(rows) > MAX_ROWS:
        raise ValueError(f"a card holds at most {MAX_ROWS} rows, got {len(rows)}")
    if not 1 <= len(buttons) <= MAX_BUTTONS:
        raise ValueError(f"a button card needs 1 to {MAX_BUTTONS} buttons, got {len(buttons)}")
    card: dict[str, Any] = {
        "card_type": "button_interaction",
        "source": {"desc": source},
        "main_title": {"title": _clip(title, 128), "desc": _clip(desc, 512)},
        "task_id": task_id,
        "button_list": [
            {"text": _clip(text, 40), "style": style, "key": key} for text, key, style in buttons
        ],
    }
    if sub_title:
        card["sub_title_text"] = _clip(sub_title, 512)
    if rows:
        card["horizontal_content_list"] = [{"keyname": _clip(k, 40), "value": _clip(v, 120)} for k, v in rows]
    if url:
        card["card_action"] = {"type": 1, "url": url}
    return card


def notice_card(
    *,
    task_id: str,
    title: str,
    desc: str = "",
    rows: Sequence[tuple[str, str]] = (),
    sub_title: str = "",
    emphasis: tuple[str, str] | None = None,
    url: str,
    source: str = "门店助手",
) -> dict[str, Any]:
    """A text_notice card (no buttons); WeCom requires card_action, so it always links somewhere."""
    if not TASK_ID.match(task_id):
        raise ValueError(f"invalid card task_id {task_id!r}")
    card: dict[str, Any] = {
        "card_type": "text_notice",
        "source": {"desc": source},
        "main_title": {"title": _clip(title, 128), "desc": _clip(desc, 512)},
        "task_id": task_id,
        "card_action": {"type": 1, "url": url},
    }
    if emphasis:
        card["emphasis_content"] = {"title": emphasis[0], "desc": emphasis[1]}
    if sub_title:
        card["sub_title_text"] = _clip(sub_title, 512)
    if rows:
        card["horizontal_content_list"] = [
            {"keyname": _clip(k, 40), "value": _clip(v, 120)} for k, v in rows[:MAX_ROWS]
        ]
    return card
