"""CampaignAlert: one open alert per (campaign, kind) (the unique key with a nullable open_key, as models/alert.py).

handlers/campaign_health.py raises, tells, escalates and resolves them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base


class CampaignAlert(Base):
    __tablename__ = "campaign_alerts"
    __table_args__ = (UniqueConstraint("campaign_pk", "kind", "open_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_pk: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    kind: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16), default="open")  # open | acknowledged | resolved
    open_key: Mapped[int | None]
    message: Mapped[str] = mapped_column(String(1000))
    created_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))
    esc_step: Mapped[int] = mapped_column(default=1)  # step 0 (the owner) fires when raised
    esc_due_at: Mapped[datetime | None]


async def acknowledge(session: AsyncSession, alert_id: int, userid: str) -> bool:
    result = await session.execute(
        update(CampaignAlert).where(CampaignAlert.id == alert_id, CampaignAlert.state == "open")
        .values(state="acknowledged", acknowledged_by=userid, esc_due_at=None)
        .execution_options(synchronize_session=False))
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def open_alerts(session: AsyncSession, campaign_id: int) -> list[CampaignAlert]:
    stmt = select(CampaignAlert).where(CampaignAlert.campaign_pk == campaign_id, CampaignAlert.open_key.is_not(None))
    return list((await session.execute(stmt.order_by(CampaignAlert.id))).scalars())
