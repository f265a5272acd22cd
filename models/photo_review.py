"""A manager's verdict on a task photo from the console's gallery: accepted or rejected, by whom and when."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, dialect_name

DECISIONS = ("accepted", "rejected")
DECISION_NAMES = {"accepted": "已通过", "rejected": "已退回"}


class PhotoReview(Base):
    """One verdict per photo (unique photo_id); a later decision replaces the earlier one."""

    __tablename__ = "photo_reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    # pruned with its photo (retention deletes old photos)
    photo_id: Mapped[int] = mapped_column(ForeignKey("task_photos.id", ondelete="CASCADE"), unique=True)
    decision: Mapped[str] = mapped_column(String(16))
    reviewed_by: Mapped[str] = mapped_column(String(64))
    reviewed_at: Mapped[datetime]


async def review_photo(session: AsyncSession, photo_id: int, decision: str, *, by: str, at: datetime) -> None:
    """Record (or replace) the verdict on one photo, in the caller's transaction."""
    if decision not in DECISIONS:
        raise ValueError(f"unknown photo decision {decision!r}")
    insert = postgresql.insert if dialect_name(session) == "postgresql" else sqlite.insert
    stmt = insert(PhotoReview).values(photo_id=photo_id, decision=decision, reviewed_by=by, reviewed_at=at)
    await session.execute(stmt.on_conflict_do_update(
        index_elements=["photo_id"], set_={"decision": decision, "reviewed_by": by, "reviewed_at": at}))


async def decision_of(session: AsyncSession, photo_id: int) -> str | None:
    stmt = select(PhotoReview.decision).where(PhotoReview.photo_id == photo_id)
    return (await session.execute(stmt)).scalar_one_or_none()
