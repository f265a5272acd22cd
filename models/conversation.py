"""Short-lived chat conversations (scan a barcode, then type the quantity), kept in the database with an expiry."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ForeignKey, String, delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base

SCAN_KINDS = ("scan_in", "scan_out", "scan_count")


class Conversation(Base):
    """At most one per person: what the bot asked and waits for."""

    __tablename__ = "conversations"

    id: Mapped[int] = mapped_column(primary_key=True)
    userid: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"))
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id"))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


async def start(
    session: AsyncSession, *, userid: str, kind: str, store_id: int, sku_id: int, now: datetime, ttl_minutes: int
) -> None:
    """Begin (or replace) the person's conversation."""
    await session.execute(delete(Conversation).where(Conversation.userid == userid))
    session.add(Conversation(userid=userid, kind=kind, store_id=store_id, sku_id=sku_id, created_at=now,
                             expires_at=now + timedelta(minutes=ttl_minutes)))
    await session.flush()


async def take(session: AsyncSession, userid: str, now: datetime) -> Conversation | None:
    """The person's live conversation, removed (it answers one message); an expired one is dropped and ignored."""
    conv = (await session.execute(select(Conversation).where(Conversation.userid == userid))).scalar_one_or_none()
    if conv is None:
        return None
    await session.delete(conv)
    await session.flush()
    return conv if conv.expires_at > now else None


async def peek(session: AsyncSession, userid: str, now: datetime) -> bool:
    stmt = select(Conversation.id).where(Conversation.userid == userid, Conversation.expires_at > now)
    return (await session.execute(stmt)).first() is not None
