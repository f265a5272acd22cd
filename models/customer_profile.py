"""A member's profile as the API and the chat show it: stage, windowed figures, segments, what to offer."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from models.customer import WINDOWS, customer_by_id, tags_of
from models.customer_stage import Figures, date_stage, stage_cuts
from models.org import Store
from models.segment import segments_of

OFFERS = {  # what staff should offer at the counter, by stage (the seed's "different offers per segment")
    "new": "首单后送一张满减券，邀请加店员企业微信",
    "active": "推荐本周新品，提醒会员积分",
    "high_potential": "请试用新品，可送新品体验装",
    "at_risk": "送一张限时折扣券，问问最近需求",
    "dormant": "送唤醒礼（到店领小礼品）",
    "lost": "送唤醒礼，并请留下最新联系方式",
}


async def profile(session: AsyncSession, customer_id: str, settings: Settings, now: datetime) -> dict[str, Any]:
    cfg = settings.customers
    member = await customer_by_id(session, customer_id)
    # Stored figures and stage (kept by each sale and the scheduled rebuild): no scan of purchases here.
    # The date part of the stage is re-read from the member's own dates, so it is right even before a rebuild.
    figs = {days: Figures(int(getattr(member, f"purchases_{days}d")),
                          Decimal(str(getattr(member, f"spend_{days}d"))).quantize(Decimal("0.01")))
            for days in WINDOWS}
    stage = member.stage if member.stage == "high_potential" else date_stage(
        stage_cuts(cfg, now), member.joined_at, member.last_purchase_at)
    store = None
    if member.home_store_id is not None:
        store = (await session.execute(select(Store.code).where(Store.id == member.home_store_id))).scalar_one()
    out: dict[str, Any] = {
        "customer_id": member.customer_id, "home_store": store, "stage": stage,
        "last_purchase_at": member.last_purchase_at.isoformat() if member.last_purchase_at else None,
        "segments": await segments_of(session, member.id), "tags": await tags_of(session, member.id),
        "reachable": bool(member.external_userid and member.follow_userid), "offer": OFFERS[stage],
    }
    for days, fig in figs.items():
        out[f"purchases_{days}d"] = fig.purchases
        out[f"spend_{days}d"] = float(fig.spend)
        out[f"avg_basket_{days}d"] = float(fig.avg_basket) if fig.avg_basket is not None else None
    return out

