"""A campaign's closed loop: reach, coupons, conversion in both arms, lift, incremental GMV, discount cost, ROI."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.campaign import SMALL_HOLDOUT, Campaign, CampaignMember, Coupon, CouponRedemption
from models.customer import CustomerPurchase

FAILED = ("unreachable", "not_friend", "quota", "error")


def _rate(n: int, d: int) -> float | None:
    return round(n / d, 4) if d else None


async def report(session: AsyncSession, campaign: Campaign) -> dict[str, Any]:
    """Conversion = members of an arm with a purchase within attribution_days of launch / the arm's size.
    lift = conversion_treatment − conversion_holdout (absolute). incremental_gmv = gmv_treatment − gmv_holdout ×
    treatment / holdout (the holdout scaled to the treatment's size). roi = (incremental_gmv − discount_cost) /
    discount_cost."""
    cid = campaign.id
    arms = dict((await session.execute(
        select(CampaignMember.arm, func.count()).where(CampaignMember.campaign_pk == cid).group_by(CampaignMember.arm)
    )).all())
    statuses = dict((await session.execute(
        select(CampaignMember.status, func.count())
        .where(CampaignMember.campaign_pk == cid, CampaignMember.arm == "treatment").group_by(CampaignMember.status)
    )).all())
    converted: dict[str, int] = {}
    gmv: dict[str, float] = {}
    if campaign.launched_at is not None:
        end = campaign.launched_at + timedelta(days=campaign.attribution_days)
        p = CustomerPurchase
        rows = (await session.execute(
            select(CampaignMember.arm, func.count(func.distinct(p.customer_pk)), func.coalesce(func.sum(p.amount), 0))
            .join(p, and_(p.customer_pk == CampaignMember.customer_pk, p.at >= campaign.launched_at, p.at < end))
            .where(CampaignMember.campaign_pk == cid).group_by(CampaignMember.arm)
        )).all()
        converted = {arm: int(n) for arm, n, _ in rows}
        gmv = {arm: round(float(s), 2) for arm, _, s in rows}
    issued = (await session.execute(select(func.count()).select_from(Coupon).where(Coupon.campaign_pk == cid)))
    redeemed, cost = (await session.execute(
        select(func.count(), func.coalesce(func.sum(CouponRedemption.discount), 0))
        .where(CouponRedemption.campaign_pk == cid)
    )).one()
    treatment, holdout = int(arms.get("treatment", 0)), int(arms.get("holdout", 0))
    conv_t = _rate(converted.get("treatment", 0), treatment)
    conv_h = _rate(converted.get("holdout", 0), holdout)
    gmv_t, gmv_h = gmv.get("treatment", 0.0), gmv.get("holdout", 0.0)
    incremental = round(gmv_t - gmv_h * treatment / holdout, 2) if holdout else None
    discount_cost = round(float(cost), 2)
    roi = round((incremental - discount_cost) / discount_cost, 4) if incremental is not None and discount_cost else None
    small = holdout < SMALL_HOLDOUT or treatment < SMALL_HOLDOUT
    return {
        "key": campaign.key, "state": campaign.state, "audience": treatment + holdout if arms else campaign.audience,
        "treatment": treatment, "holdout": holdout,
        "sent": sum(int(statuses.get(s, 0)) for s in ("sent", "not_friend", "quota")),
        "delivered": int(statuses.get("sent", 0)), "waiting": int(statuses.get("pending", 0)),
        "failed": {reason: int(statuses[reason]) for reason in FAILED if statuses.get(reason)},
        "coupons_issued": int(issued.scalar_one()), "coupons_redeemed": int(redeemed),
        "conversion_treatment": conv_t, "conversion_holdout": conv_h,
        "lift": round(conv_t - conv_h, 4) if conv_t is not None and conv_h is not None else None,
        "gmv_treatment": gmv_t, "gmv_holdout": gmv_h, "incremental_gmv": incremental,
        "discount_cost": discount_cost, "roi": roi, "small_sample": small,
        "note": f"样本较小（对照组 {holdout} 人），提升只作参考。" if small else "",
    }
