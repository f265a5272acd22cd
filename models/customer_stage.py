"""Lifecycle stages (new, active, high potential, at risk, dormant, lost) and a member's windowed figures."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config_customers import CustomersSettings
from models.customer import Customer, CustomerPurchase

WINDOWS = (30, 90, 365)


@dataclass(frozen=True)
class Figures:
    purchases: int
    spend: Decimal

    @property
    def avg_basket(self) -> Decimal | None:
        return (self.spend / self.purchases).quantize(Decimal("0.01")) if self.purchases else None


async def mean_basket(session: AsyncSession, days: int, now: datetime) -> float | None:
    """The chain-wide mean basket over members with at least one purchase in the last `days` days."""
    per = (
        select((func.sum(CustomerPurchase.amount) * 1.0 / func.count()).label("basket"))
        .where(CustomerPurchase.at >= now - timedelta(days=days))
        .group_by(CustomerPurchase.customer_pk).subquery()
    )
    value = (await session.execute(select(func.avg(per.c.basket)))).scalar_one_or_none()
    return None if value is None else float(value)


async def figures(session: AsyncSession, customer_pk: int, now: datetime,
                  windows: tuple[int, ...] = WINDOWS) -> dict[int, Figures]:
    """Purchases and spend over each window (30 / 90 / 365 days), in one indexed pass over this member's rows."""
    cols: list[Any] = []
    for days in windows:
        inside = CustomerPurchase.at >= now - timedelta(days=days)
        cols += [func.count().filter(inside), func.coalesce(func.sum(CustomerPurchase.amount).filter(inside), 0)]
    row = (await session.execute(
        select(*cols).where(CustomerPurchase.customer_pk == customer_pk,
                            CustomerPurchase.at >= now - timedelta(days=max(windows)))
    )).one()
    return {days: Figures(int(row[2 * i]), Decimal(str(row[2 * i + 1])).quantize(Decimal("0.01")))
            for i, days in enumerate(windows)}


def stage_for(cfg: CustomersSettings, now: datetime, *, joined_at: datetime | None,
              last_purchase_at: datetime | None, recent: Figures, mean: float | None) -> str:
    """The one stage rule, for one member (the SQL in rebuild_stages is the same rule for everyone).
    `recent` is the member's figures over active_days; `mean` the chain's mean basket over that window."""
    if (recent.purchases >= cfg.high_potential_purchases and mean is not None and recent.avg_basket is not None
            and float(recent.avg_basket) > cfg.high_potential_basket_times_mean * mean):
        return "high_potential"
    if joined_at is not None and joined_at >= now - timedelta(days=cfg.new_days):
        return "new"
    if last_purchase_at is None:
        return "lost"
    for stage, days in (("active", cfg.active_days), ("at_risk", cfg.at_risk_days), ("dormant", cfg.dormant_days)):
        if last_purchase_at >= now - timedelta(days=days):
            return stage
    return "lost"


async def rebuild_stages(session: AsyncSession, cfg: CustomersSettings, now: datetime) -> float | None:
    """Every member's stage in two set-based UPDATEs: everyone by dates, then the high-potential ones by their
    recent figures (one GROUP BY over the active window). Returns the mean basket it used."""
    c = Customer.__table__.c
    cut = {k: now - timedelta(days=d) for k, d in (("new", cfg.new_days), ("active", cfg.active_days),
                                                   ("at_risk", cfg.at_risk_days), ("dormant", cfg.dormant_days))}
    by_dates = case(
        (c.joined_at >= cut["new"], "new"),
        (c.last_purchase_at.is_(None), "lost"),
        (c.last_purchase_at >= cut["active"], "active"),
        (c.last_purchase_at >= cut["at_risk"], "at_risk"),
        (c.last_purchase_at >= cut["dormant"], "dormant"),
        else_="lost",
    )
    await session.execute(update(Customer).values(stage=by_dates).execution_options(synchronize_session=False))
    mean = await mean_basket(session, cfg.active_days, now)
    if mean is None:
        return None
    recent = (
        select(CustomerPurchase.customer_pk.label("pk"))
        .where(CustomerPurchase.at >= cut["active"])
        .group_by(CustomerPurchase.customer_pk)
        .having(and_(func.count() >= cfg.high_potential_purchases,
                     func.sum(CustomerPurchase.amount) * 1.0 / func.count()
                     > cfg.high_potential_basket_times_mean * mean))
    )
    await session.execute(
        update(Customer).where(Customer.id.in_(recent)).values(stage="high_potential")
        .execution_options(synchronize_session=False)
    )
    return mean
