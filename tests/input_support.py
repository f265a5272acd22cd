"""Helpers for the input tests: dispatch one event in a transaction that is rolled back, and read the replies."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

import handlers
from bot.deps import Deps
from bot.events import CardClick, Event, TextMessage
from models.outbox import OutboundMessage

WHEN = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)


def text(user: str, content: str) -> TextMessage:
    return TextMessage(from_user=user, create_time=WHEN, agent_id=1000002, content=content, msg_id="1")


def click(user: str, key: str) -> CardClick:
    return CardClick(from_user=user, create_time=WHEN, agent_id=1000002, key=key, task_id="t", card_type="x",
                     response_code="rc")


async def replies(deps: Deps, event: Event, *, keep: bool = False) -> list[OutboundMessage]:
    """Dispatch as the inbox worker does; the rows queued in that transaction (rolled back unless keep)."""
    async with deps.sessions() as session:
        trans = await session.begin()
        before = (await session.execute(select(OutboundMessage.id).order_by(OutboundMessage.id.desc()).limit(1)))
        last = before.scalar_one_or_none() or 0
        await handlers.dispatch(event, deps, session)
        stmt = select(OutboundMessage).where(OutboundMessage.id > last).order_by(OutboundMessage.id)
        rows = list((await session.execute(stmt)).scalars())
        session.expunge_all()  # keep what was read: a rollback would expire it
        await (trans.commit() if keep else trans.rollback())
    return rows


def texts_to(rows: list[OutboundMessage], user: str) -> list[str]:
    """Text and markdown bodies to one person (cards excluded)."""
    return [r.payload["content"] for r in rows if r.recipient == user and r.msgtype in ("text", "markdown")]


async def say(deps: Deps, user: str, content: str, *, keep: bool = True) -> str:
    """The one text reply the sender gets."""
    [reply] = texts_to(await replies(deps, text(user, content), keep=keep), user)
    return reply


def answers_to(rows: list[OutboundMessage], user: str) -> list[OutboundMessage]:
    """What answers the sender: texts, and the card that asks which product was meant (not notifications)."""
    return [r for r in rows if r.recipient == user and (
        r.msgtype in ("text", "markdown") or (r.card_task_id or "").startswith("skupick"))]
