"""The durable outbox: every message to WeCom is a row first, written in the same transaction as its cause.

Domain code calls `enqueue()` (or the send_* helpers) inside its own transaction; the outbox worker in
bot/queues/outbox.py claims due rows, sends them and records the answer. A dedupe_key makes enqueueing idempotent.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, Text, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, insert_for


def fit_bytes(text: str, limit: int) -> str:
    """Cut text to at most limit UTF-8 bytes at a character boundary, ending in "…" when cut."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[: limit - len("…".encode())].decode("utf-8", errors="ignore") + "…"

# channel: how the payload is delivered
#   app          message/send to one member (recipient = userid)
#   appchat      appchat/send to a group chat (recipient = chatid)
#   webhook      group robot webhook/send (recipient = robot key)
#   card_update  message/update_template_card (recipient = userid; payload has response_code)
CHANNELS = ("app", "appchat", "webhook", "card_update")
# WeCom refuses a text or markdown body over 2,048 UTF-8 bytes (45002) and never delivers it: cut, never drop.
CONTENT_MAX_BYTES = 2048
STATES = ("pending", "sending", "sent", "failed", "cancelled")


class OutboundMessage(Base):
    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_state_next", "state", "next_attempt_at", "id"),  # the claim's order, read off the index
        Index("ix_outbox_recipient_sent", "recipient", "sent_at"),  # budgets: a member's recent sends; listing
        Index("ix_outbox_content_sent", "content_hash", "sent_at"),  # the duplicate check: identical messages
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    recipient: Mapped[str] = mapped_column(String(128))
    msgtype: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]]  # the msgtype's body, e.g. {"content": "..."} or a template_card dict
    dedupe_key: Mapped[str | None] = mapped_column(String(191), unique=True)
    card_task_id: Mapped[str | None] = mapped_column(String(128), index=True)  # template_card.task_id
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None]
    msgid: Mapped[str | None] = mapped_column(String(128))
    response_code: Mapped[str | None] = mapped_column(String(256))
    last_error: Mapped[str | None] = mapped_column(Text)
    # app messages: what WeCom's duplicate check compares (recipient, msgtype, body), see content_hash()
    content_hash: Mapped[str | None] = mapped_column(String(40))
    # the start of the earliest attempt whose outcome is unknown (a timeout, a crash mid-send): WeCom may have
    # delivered it, so a retry must carry a duplicate check that reaches back that far
    uncertain_since: Mapped[datetime | None]


def content_hash(recipient: str, msgtype: str, payload: dict[str, Any]) -> str:
    """Identical app messages to one member share this hash: the same msgtype and body (bot/queues/outbox_dupes.py)."""
    raw = json.dumps([recipient, msgtype, payload], sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()[:40]


async def enqueue(
    session: AsyncSession,
    *,
    channel: str,
    recipient: str,
    msgtype: str,
    payload: dict[str, Any],
    now: datetime,
    dedupe_key: str | None = None,
    not_before: datetime | None = None,
) -> int | None:
    """Queue one message in the caller's transaction. Returns its id, or None if dedupe_key was already queued."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown outbox channel {channel!r}")
    card_task_id = payload.get("task_id") if msgtype == "template_card" else None
    if msgtype in ("text", "markdown") and isinstance(content := payload.get("content"), str):
        payload = {**payload, "content": fit_bytes(content, CONTENT_MAX_BYTES)}
    values = {
        "channel": channel,
        "recipient": recipient,
        "msgtype": msgtype,
        "payload": payload,
        "dedupe_key": dedupe_key,
        "card_task_id": card_task_id,
        "content_hash": content_hash(recipient, msgtype, payload) if channel == "app" else None,
        "state": "pending",
        "attempts": 0,
        "next_attempt_at": not_before or now,
        "created_at": now,
    }
    insert = insert_for(session)
    stmt = insert(OutboundMessage).values(**values)
    if dedupe_key is not None:
        stmt = stmt.on_conflict_do_nothing(index_elements=["dedupe_key"])
    result = await session.execute(stmt.returning(OutboundMessage.id))
    return result.scalar_one_or_none()


async def send_text(
    session: AsyncSession, userid: str, text: str, *, now: datetime, dedupe_key: str | None = None,
    not_before: datetime | None = None,
) -> int | None:
    return await enqueue(
        session, channel="app", recipient=userid, msgtype="text", payload={"content": text}, now=now,
        dedupe_key=dedupe_key, not_before=not_before,
    )


async def send_markdown(
    session: AsyncSession, userid: str, text: str, *, now: datetime, dedupe_key: str | None = None,
    not_before: datetime | None = None,
) -> int | None:
    return await enqueue(
        session, channel="app", recipient=userid, msgtype="markdown", payload={"content": text}, now=now,
        dedupe_key=dedupe_key, not_before=not_before,
    )


async def send_card(
    session: AsyncSession, userid: str, card: dict[str, Any], *, now: datetime, dedupe_key: str | None = None,
    not_before: datetime | None = None,
) -> int | None:
    """Queue a template_card (see bot/wecom/cards.py for building one) to one member."""
    return await enqueue(
        session, channel="app", recipient=userid, msgtype="template_card", payload=card, now=now,
        dedupe_key=dedupe_key, not_before=not_before,
    )


async def update_card_button(
    session: AsyncSession, userid: str, response_code: str, replace_name: str, *, now: datetime,
) -> int | None:
    """Queue message/update_template_card that greys the clicked card's buttons with replace_name."""
    return await enqueue(
        session, channel="card_update", recipient=userid, msgtype="button",
        payload={"response_code": response_code, "button": {"replace_name": replace_name}}, now=now,
        dedupe_key=f"card-update:{response_code}",
    )


async def update_card(
    session: AsyncSession, userid: str, response_code: str, card: dict[str, Any], *, now: datetime,
) -> int | None:
    """Queue message/update_template_card that replaces a sent card by `card` as a whole (same task_id); for a
    button_interaction card its `replace_text` greys the buttons with that text."""
    return await enqueue(
        session, channel="card_update", recipient=userid, msgtype="card",
        payload={"response_code": response_code, "template_card": card}, now=now,
        dedupe_key=f"card-update:{response_code}",
    )


async def send_to_chat(
    session: AsyncSession, chatid: str, msgtype: str, payload: dict[str, Any], *, now: datetime,
    dedupe_key: str | None = None,
) -> int | None:
    return await enqueue(
        session, channel="appchat", recipient=chatid, msgtype=msgtype, payload=payload, now=now,
        dedupe_key=dedupe_key,
    )


async def latest_card(session: AsyncSession, card_task_id: str) -> OutboundMessage | None:
    stmt = select(OutboundMessage).where(OutboundMessage.card_task_id == card_task_id)
    return (await session.execute(stmt.order_by(OutboundMessage.id.desc()).limit(1))).scalar_one_or_none()


async def cancel_unsent(session: AsyncSession, row_id: int) -> bool:
    """Withdraw a queued message the worker has not claimed yet (True), e.g. an approval card that became moot
    before it went out; a message already sending or sent stays as it is (False)."""
    stmt = (
        update(OutboundMessage).where(OutboundMessage.id == row_id, OutboundMessage.state == "pending")
        .values(state="cancelled").execution_options(synchronize_session=False)
    )
    return bool((await session.execute(stmt)).rowcount)  # type: ignore[attr-defined]
