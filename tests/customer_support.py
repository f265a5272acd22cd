"""Helpers for the customer-loop tests: members written through the models, signed POS sales with a member."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings
from models.customer import Customer, CustomerTag
from tests.conftest import TEST_POS_SECRET, AppClient
from tests.factories import Chain


@dataclass(frozen=True)
class Member:
    customer_id: str
    home_store: str | None = "S001"
    external_userid: str | None = None
    follow_userid: str | None = None
    joined_at: datetime | None = None
    phone: str = ""
    tags: tuple[str, ...] = ()


async def add_members(sessions: async_sessionmaker[AsyncSession], chain: Chain, members: list[Member],
                      now: datetime) -> dict[str, int]:
    async with sessions() as s, s.begin():
        rows = []
        for m in members:
            c = Customer(customer_id=m.customer_id, name="", phone=m.phone, phone_tail=m.phone[-4:],
                         home_store_id=chain.stores[m.home_store].id if m.home_store else None,
                         external_userid=m.external_userid, follow_userid=m.follow_userid,
                         joined_at=m.joined_at, created_at=now, updated_at=now, purchases_total=0,
                         spend_total=Decimal(0), stage="new")
            s.add(c)
            rows.append((c, m))
        await s.flush()
        s.add_all(CustomerTag(customer_pk=c.id, tag=t) for c, m in rows for t in m.tags)
        return {m.customer_id: c.id for c, m in rows}


def signed(body: bytes) -> dict[str, str]:
    digest = hmac.new(TEST_POS_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Storebot-Signature": f"sha256={digest}", "Content-Type": "application/json"}


async def sell(client: AppClient, sale_id: str, customer_id: str | None, amount: float, at: datetime, *,
               store: str = "S001", coupon_code: str | None = None) -> dict[str, Any]:
    """A one-line sale of A001 worth `amount` (qty 1) by the member; answers the POS reply."""
    body: dict[str, Any] = {"sale_id": sale_id, "store": store, "sold_at": at.isoformat(),
                            "lines": [{"sku": "A001", "qty": 1, "unit_price": amount}]}
    if customer_id is not None:
        body["customer_id"] = customer_id
    if coupon_code is not None:
        body["coupon_code"] = coupon_code
    raw = json.dumps(body).encode()
    r = await client.post("/api/pos/sales", data=raw, headers=signed(raw))
    assert r.status == 200, await r.text()
    return dict(await r.json())


# Member history reaches back months, but a POS sale older than `pos.max_sale_age_days` (or ahead of the clock) is
# refused (tests/stock/test_pos_dates.py). Modules that post history import this fixture: the window opened wide.
HISTORY_POS = {"max_sale_age_days": 3650, "max_sale_ahead_hours": 720}


@pytest.fixture
def make_settings(make_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    def make(**sections: Any) -> Settings:
        return make_settings(pos={**HISTORY_POS, **sections.pop("pos", {})}, **sections)

    return make
