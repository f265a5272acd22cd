"""Coupon redemption by a POS sale: atomic with the sale, and a bad code never blocks the sale."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models.campaign import Campaign, Coupon, CouponRedemption, offer_of
from models.customer import Customer

CENT = Decimal("0.01")


@dataclass(frozen=True)
class Redeemed:
    ok: bool
    reason: str  # "redeemed" or why not, in the POS's words
    customer_pk: int | None = None
    discount: Decimal = Decimal(0)


class _Refused(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def discount_for(kind: str, value: float, total: Decimal) -> Decimal:
    """discount: value percent off; amount: value off (at most the total); gift: the gift's cost."""
    v = Decimal(str(value))
    if kind == "discount":
        return (total * v / 100).quantize(CENT, ROUND_HALF_UP)
    if kind == "amount":
        return min(v, total).quantize(CENT, ROUND_HALF_UP)
    return v.quantize(CENT, ROUND_HALF_UP)


async def redeem(session: AsyncSession, *, code: str, sale_id: str, customer_id: str | None, total: Decimal,
                 at: datetime) -> Redeemed:
    """Use the code for this sale, in the sale's transaction. The coupon's uses and the campaign's cap are each
    raised by a guarded UPDATE (two concurrent sales cannot both take the last use); any refusal rolls back only
    this savepoint and says why."""
    try:
        async with session.begin_nested():
            return await _redeem(session, code, sale_id, customer_id, total, at)
    except _Refused as refused:
        return Redeemed(False, refused.reason)


async def _redeem(session: AsyncSession, code: str, sale_id: str, customer_id: str | None, total: Decimal,
                  at: datetime) -> Redeemed:
    row = (await session.execute(
        select(Coupon, Campaign, Customer.customer_id).join(Campaign, Campaign.id == Coupon.campaign_pk)
        .join(Customer, Customer.id == Coupon.customer_pk).where(Coupon.code == code.strip().upper())
    )).one_or_none()
    if row is None:
        raise _Refused("unknown code")
    coupon, campaign, owner_id = row
    if customer_id and customer_id != owner_id:
        raise _Refused("the code belongs to another member")
    if campaign.state != "launched":
        raise _Refused("the campaign is not running")
    if at >= coupon.expires_at:
        raise _Refused("expired")
    used = await session.execute(
        update(Coupon).where(Coupon.id == coupon.id, Coupon.uses < Coupon.max_uses)
        .values(uses=Coupon.uses + 1).execution_options(synchronize_session=False)
    )
    if used.rowcount != 1:  # type: ignore[attr-defined]
        raise _Refused("already used")
    offer = offer_of(campaign)
    capped = await session.execute(
        update(Campaign).where(Campaign.id == campaign.id, Campaign.redeemed < offer.cap_total)
        .values(redeemed=Campaign.redeemed + 1).execution_options(synchronize_session=False)
    )
    if capped.rowcount != 1:  # type: ignore[attr-defined]
        raise _Refused(f"the campaign's cap of {offer.cap_total} is reached")
    discount = discount_for(offer.kind, offer.value, total)
    session.add(CouponRedemption(coupon_pk=coupon.id, campaign_pk=campaign.id, sale_id=sale_id, at=at,
                                 discount=discount))
    await session.flush()
    return Redeemed(True, "redeemed", coupon.customer_pk, discount)
