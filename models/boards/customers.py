"""客户 board: lifecycle stages now and per day (customer_stage_days), members joining / buying per month,
segments (members in scope) and campaign reports with their open health alerts (read from models.customer*,
segment, campaign_report)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config_customers import CustomersSettings
from models.base import dialect_name
from models.boards.filters import Filters, Selection, local_month
from models.campaign import Campaign
from models.campaign_alert import open_alerts
from models.campaign_report import report
from models.customer import STAGES, Customer, CustomerPurchase
from models.customer_stage_day import CustomerStageDay
from models.segment import Segment, SegmentMember, describe

STAGE_NAMES = {"new": "新会员", "active": "活跃会员", "high_potential": "高潜会员", "at_risk": "有流失风险的会员",
               "dormant": "沉睡会员", "lost": "已流失会员"}
CAMPAIGN_LIMIT = 20


@dataclass
class CustomersBoard:
    stages: dict[str, int] = field(default_factory=dict)
    months: list[str] = field(default_factory=list)
    joined: dict[str, int] = field(default_factory=dict)
    buyers: dict[str, int] = field(default_factory=dict)
    history: dict[tuple[str, str], int] = field(default_factory=dict)  # (YYYY-MM-DD, stage) → members
    segments: list[dict[str, Any]] = field(default_factory=list)
    campaigns: list[dict[str, Any]] = field(default_factory=list)


async def customers_board(
    session: AsyncSession, sel: Selection, filters: Filters, *, now: datetime, cfg: CustomersSettings,
    with_campaigns: bool,
) -> CustomersBoard:
    """Members of the selected stores (their home store). Campaign figures are chain-wide, so only viewers who
    see the whole chain or a region get them (`with_campaigns`)."""
    from models.boards.effect import months_between

    dialect = dialect_name(session)
    board = CustomersBoard(months=months_between(filters))
    in_scope = sel.where(Customer.home_store_id)
    stages = dict((await session.execute(
        select(Customer.stage, func.count()).where(in_scope).group_by(Customer.stage))).all())
    board.stages = {k: int(stages.get(k, 0)) for k in STAGES}
    joined_m = local_month(Customer.joined_at, dialect).label("m")
    board.joined = {m: int(n) for m, n in await session.execute(
        select(joined_m, func.count()).where(in_scope, Customer.joined_at >= filters.start,
                                             Customer.joined_at < filters.end).group_by(joined_m))}
    bought_m = local_month(CustomerPurchase.at, dialect).label("m")
    board.buyers = {m: int(n) for m, n in await session.execute(
        select(bought_m, func.count(func.distinct(CustomerPurchase.customer_pk)))
        .join(Customer, Customer.id == CustomerPurchase.customer_pk)
        .where(in_scope, CustomerPurchase.at >= filters.start, CustomerPurchase.at < filters.end)
        .group_by(bought_m))}
    h = CustomerStageDay
    board.history = {(day.isoformat(), stage): int(n) for day, stage, n in await session.execute(
        select(h.day, h.stage, func.sum(h.members))
        .where(sel.where(h.store_id), h.day >= filters.date_from, h.day <= filters.date_to)
        .group_by(h.day, h.stage))}
    members = dict((await session.execute(
        select(SegmentMember.segment_pk, func.count()).join(Customer, Customer.id == SegmentMember.customer_pk)
        .where(in_scope).group_by(SegmentMember.segment_pk))).all())
    for seg in (await session.execute(select(Segment).order_by(Segment.key))).scalars():
        view = describe(seg, [], now, cfg)
        view["in_scope"] = int(members.get(seg.id, 0))
        view["built"] = seg.built_at
        board.segments.append(view)
    if with_campaigns:
        recent = (await session.execute(
            select(Campaign).order_by(Campaign.created_at.desc()).limit(CAMPAIGN_LIMIT))).scalars().all()
        for c in recent:  # a handful of campaigns, each report a few grouped queries
            board.campaigns.append({"name": c.name, "key": c.key, "report": await report(session, c),
                                    "problems": c.problems,
                                    "alerts": [a.message for a in await open_alerts(session, c.id)]})
    return board
