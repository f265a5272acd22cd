"""What a POS sale means for the customer loop: the member's purchase and, with a coupon code, its redemption."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config_customers import CustomersSettings
from models.coupon import redeem
from models.customer import Customer, record_purchase
from models.customer_stage import stage_cuts


async def customer_sale(
    session: AsyncSession, *, sale_id: str, store_id: int, sold_at: datetime, total: Decimal,
    customer_id: str | None, coupon_code: str | None, now: datetime, cfg: CustomersSettings | None = None,
) -> dict[str, str]:
    """Called in the sale's transaction right after it was booked; answers extra keys for the POS reply.
    A coupon without a member id makes the sale the coupon owner's purchase."""
    extra: dict[str, str] = {}
    member_id = customer_id
    if coupon_code:
        result = await redeem(session, code=coupon_code, sale_id=sale_id, customer_id=customer_id, total=total,
                              at=sold_at)
        extra["coupon"] = "redeemed" if result.ok else f"rejected: {result.reason}"
        if result.ok:
            extra["discount"] = str(result.discount)
            if not member_id and result.customer_pk is not None:
                member_id = (await session.execute(
                    select(Customer.customer_id).where(Customer.id == result.customer_pk))).scalar_one()
    if member_id:
        await record_purchase(session, sale_id=sale_id, customer_id=member_id, store_id=store_id, at=sold_at,
                              amount=total, now=now, cuts=stage_cuts(cfg or CustomersSettings(), now))
    return extra
