"""Look-ups behind the chat commands 客户 and 活动: members by id or phone tail, a person's running campaigns."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.campaign_health import open_alerts
from models.campaign import Campaign, CampaignMember, CampaignSend
from models.customer import Customer
from models.org import Staff

MAX_CANDIDATES = 5


async def find_members(session: AsyncSession, query: str, user: Staff) -> list[Customer]:
    """By member id; else by the last 4 digits of the phone, the sender's own store's members first."""
    exact = (await session.execute(select(Customer).where(Customer.customer_id == query))).scalars().all()
    if exact or not (len(query) == 4 and query.isdigit()):
        return list(exact)
    stmt = select(Customer).where(Customer.phone_tail == query)
    if user.store_id is not None:
        stmt = stmt.order_by((Customer.home_store_id == user.store_id).desc(), Customer.customer_id)
    else:
        stmt = stmt.order_by(Customer.customer_id)
    return list((await session.execute(stmt.limit(MAX_CANDIDATES + 1))).scalars())


def masked(phone: str) -> str:
    return f"{phone[:3]}****{phone[-4:]}" if len(phone) >= 8 else ("****" + phone[-4:] if phone else "")


@dataclass(frozen=True)
class CampaignLine:
    name: str
    treatment: int
    delivered: int
    waiting: int
    redeemed: int
    alerts: list[str]


async def running_campaigns(session: AsyncSession, user: Staff, now: datetime) -> list[CampaignLine]:
    """Launched campaigns still inside their attribution window that concern the person: an admin sees all, others
    those they own or whose senders are in their store (manager) or region (supervisor)."""
    stmt = select(Campaign).where(Campaign.state == "launched").order_by(Campaign.launched_at.desc())
    if user.role != "admin":
        scope = Staff.store_id == user.store_id if user.role == "manager" else Staff.region_id == user.region_id
        senders = select(CampaignSend.campaign_pk).join(Staff, Staff.userid == CampaignSend.sender).where(scope)
        stmt = stmt.where(or_(Campaign.owner == user.userid, Campaign.id.in_(senders)))
    out = []
    for c in (await session.execute(stmt)).scalars():
        if c.launched_at is not None and now > c.launched_at + timedelta(days=c.attribution_days):
            continue
        counts = dict((await session.execute(
            select(CampaignMember.status, func.count()).where(CampaignMember.campaign_pk == c.id,
                                                              CampaignMember.arm == "treatment")
            .group_by(CampaignMember.status))).all())
        alerts = [a.message for a in await open_alerts(session, c.id)]
        out.append(CampaignLine(c.name, sum(int(n) for n in counts.values()), int(counts.get("sent", 0)),
                                int(counts.get("pending", 0)), c.redeemed, alerts))
    return out
