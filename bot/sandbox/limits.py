"""WeCom's content rules for outbound messages: types, byte limits, template-card shape, errcodes on violation."""

from __future__ import annotations

import re
from typing import Any

from bot.sandbox.records import JSON, ApiError

TEXT_MAX = 2048
MARKDOWN_MAX = 2048
ROBOT_MARKDOWN_MAX = 4096
TEXTCARD_TITLE_MAX = 128
TEXTCARD_DESC_MAX = 512
TASK_ID_RE = re.compile(r"^[0-9A-Za-z_\-@]{1,128}$")
CARD_TYPES = frozenset(
    {"text_notice", "news_notice", "button_interaction", "vote_interaction", "multiple_interaction"}
)
APP_TYPES = frozenset(
    {"text", "markdown", "textcard", "template_card", "image", "voice", "video", "file", "news", "mpnews"}
)
CHAT_TYPES = frozenset({"text", "markdown", "textcard", "image", "file", "voice", "video", "news", "mpnews"})
ROBOT_TYPES = frozenset({"text", "markdown", "image", "news", "file", "template_card"})
MEDIA_TYPES = frozenset({"image", "voice", "video", "file"})


def _size(value: Any) -> int:
    return len(str(value).encode("utf-8"))


def _too_large(what: str, limit: int) -> ApiError:
    return ApiError(45002, f"content size out of limit: {what} exceeds {limit} bytes")


def _invalid(what: str) -> ApiError:
    return ApiError(40058, f"invalid parameter: {what}")


def _section(body: JSON, msgtype: str) -> JSON:
    section = body.get(msgtype)
    if not isinstance(section, dict):
        raise ApiError(44004, f"empty content: {msgtype} is missing")
    return section


def check_content(body: JSON, allowed: frozenset[str], *, robot: bool = False) -> str:
    """Validate the message part of a send body; return its msgtype. Raises ApiError like WeCom would."""
    msgtype = body.get("msgtype")
    if not isinstance(msgtype, str) or msgtype not in allowed:
        raise ApiError(40008, f"invalid message type: {msgtype!r}")
    section = _section(body, msgtype)
    if msgtype == "text":
        content = section.get("content")
        if not isinstance(content, str) or not content:
            raise ApiError(44004, "empty content: text.content is empty")
        if _size(content) > TEXT_MAX:
            raise _too_large("text.content", TEXT_MAX)
    elif msgtype == "markdown":
        content = section.get("content")
        limit = ROBOT_MARKDOWN_MAX if robot else MARKDOWN_MAX
        if not isinstance(content, str) or not content:
            raise ApiError(44004, "empty content: markdown.content is empty")
        if _size(content) > limit:
            raise _too_large("markdown.content", limit)
    elif msgtype == "textcard":
        for key in ("title", "description", "url"):
            if not section.get(key):
                raise _invalid(f"textcard.{key} is required")
        if _size(section["title"]) > TEXTCARD_TITLE_MAX:
            raise _too_large("textcard.title", TEXTCARD_TITLE_MAX)
        if _size(section["description"]) > TEXTCARD_DESC_MAX:
            raise _too_large("textcard.description", TEXTCARD_DESC_MAX)
    elif msgtype == "template_card":
        check_card(section, robot=robot)
    elif msgtype in MEDIA_TYPES and not robot and not section.get("media_id"):
        raise ApiError(40007, "invalid media_id: media_id is empty")
    elif msgtype in ("news", "mpnews"):
        articles = section.get("articles")
        if not isinstance(articles, list) or not 1 <= len(articles) <= 8:
            raise _invalid(f"{msgtype}.articles must hold 1 to 8 items")
    return msgtype


def check_card(card: JSON, *, robot: bool = False) -> str:
    """Validate a template_card; return its card_type."""
    card_type = card.get("card_type")
    if card_type not in CARD_TYPES:
        raise _invalid(f"template_card.card_type {card_type!r}")
    if robot and card_type not in ("text_notice", "news_notice"):
        raise _invalid(f"a group robot cannot send {card_type} cards")
    task_id = card.get("task_id")
    if task_id is not None and not TASK_ID_RE.match(str(task_id)):
        raise _invalid("template_card.task_id: only [0-9a-zA-Z_-@], at most 128 bytes")
    if card_type in ("button_interaction", "vote_interaction", "multiple_interaction") and not task_id:
        raise _invalid(f"template_card.task_id is required for {card_type}")
    main = card.get("main_title") or {}
    if not isinstance(main, dict):
        raise _invalid("template_card.main_title must be an object")
    if _size(main.get("title", "")) > 128 or _size(main.get("desc", "")) > 512:
        raise _too_large("template_card.main_title", 128)
    if card_type == "text_notice" and not card.get("card_action"):
        raise _invalid("template_card.card_action is required for text_notice")
    if not main.get("title") and not (card.get("sub_title_text") or card.get("emphasis_content")):
        raise _invalid("template_card.main_title.title or sub_title_text is required")
    _check_list(card, "horizontal_content_list", 6)
    _check_list(card, "jump_list", 3)
    buttons = _check_list(card, "button_list", 6)
    if card_type == "button_interaction" and not buttons:
        raise _invalid("template_card.button_list needs 1 to 6 buttons")
    for button in buttons:
        if not isinstance(button, dict) or not button.get("text"):
            raise _invalid("template_card.button_list[].text is required")
        if not button.get("key") and button.get("type", 0) != 1:
            raise _invalid("template_card.button_list[].key is required")
        if _size(button.get("key", "")) > 1024:
            raise _too_large("template_card.button_list[].key", 1024)
        if button.get("style", 1) not in (1, 2, 3, 4):
            raise _invalid("template_card.button_list[].style must be 1 to 4")
    return str(card_type)


def _check_list(card: JSON, name: str, limit: int) -> list[Any]:
    items = card.get(name) or []
    if not isinstance(items, list):
        raise _invalid(f"template_card.{name} must be a list")
    if len(items) > limit:
        raise _invalid(f"template_card.{name} holds at most {limit} items")
    for item in items:
        if name == "horizontal_content_list" and isinstance(item, dict) and (
            _size(item.get("keyname", "")) > 64 or _size(item.get("value", "")) > 128
        ):
            raise _too_large(f"template_card.{name}[] keyname/value", 128)
    return items


def media_limit(kind: str) -> int:
    """Upper size per media type (the stricter, older figures)."""
    return {"image": 2 * 1024 * 1024, "voice": 2 * 1024 * 1024, "video": 10 * 1024 * 1024}.get(
        kind, 20 * 1024 * 1024
    )
