"""Lifecycle stage history: members per (China-local day, stage, home store), one snapshot per day written by the
stage rebuild (a later rebuild the same day replaces that day's counts). Small (days × stages × stores); kept."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Date, ForeignKey, String, UniqueConstraint, delete, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, insert_for
from models.customer import Customer

CHINA = ZoneInfo("Asia/Shanghai")  # the boards' day (models.boards.filters.BOARD_TZ)


class CustomerStageDay(Base):
    __tablename__ = "customer_stage_days"
    __table_args__ = (UniqueConstraint("day", "stage", "store_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    stage: Mapped[str] = mapped_column(String(16))
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"), index=True)
    members: Mapped[int]


def local_date(now: datetime) -> date:
    return now.astimezone(CHINA).date()


async def snapshot_stages(session: AsyncSession, now: datetime) -> None:
    """Today's members per (stage, home store) from one INSERT … SELECT … GROUP BY. The day's earlier rows go
    first (a stage that emptied since must not keep its old count; NULL stores never meet the unique key), the
    upsert covers a concurrent rebuild that wrote the same keys meanwhile."""
    day = local_date(now)
    await session.execute(delete(CustomerStageDay).where(CustomerStageDay.day == day))
    c = Customer.__table__.c
    counts = select(literal(day, Date).label("day"), c.stage, c.home_store_id, func.count()).group_by(
        c.stage, c.home_store_id)
    ins = insert_for(session)(CustomerStageDay).from_select(["day", "stage", "store_id", "members"], counts)
    await session.execute(ins.on_conflict_do_update(index_elements=["day", "stage", "store_id"],
                                                    set_={"members": ins.excluded.members}))
