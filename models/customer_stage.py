"""Lifecycle stages (new, active, high potential, at risk, dormant, lost) and a member's windowed figures."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config_customers import CustomersSettings
from models.customer import (
    WINDOWS,
    Customer,
    CustomerPurchase,
    StageCuts,
    stage_by_dates,
    stored_window,
    window_columns,
)
from models.customer_stage_day import snapshot_stages


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


def date_stage(cuts: StageCuts, joined_at: datetime | None, last_purchase_at: datetime | None) -> str:
    """stage_by_dates (the SQL every rebuild and sale uses) for one member in Python, for the profile."""
    if joined_at is not None and joined_at >= cuts.new:
        return "new"
    if last_purchase_at is None:
        return "lost"
    for stage, cut in (("active", cuts.active), ("at_risk", cuts.at_risk), ("dormant", cuts.dormant)):
        if last_purchase_at >= cut:
            return stage
    return "lost"


def stage_cuts(cfg: CustomersSettings, now: datetime) -> StageCuts:
    return StageCuts(new=now - timedelta(days=cfg.new_days), active=now - timedelta(days=cfg.active_days),
                     at_risk=now - timedelta(days=cfg.at_risk_days), dormant=now - timedelta(days=cfg.dormant_days))


async def rebuild_figures(session: AsyncSession, now: datetime) -> None:
    """Every member's stored windowed figures from one GROUP BY over the last 365 days of purchases, writing only
    the rows that change (between rebuilds sales keep them current; here purchases leave the windows)."""
    p = CustomerPurchase
    cols: dict[str, Any] = {}
    for days in WINDOWS:
        inside = p.at >= now - timedelta(days=days)
        cols[f"purchases_{days}d"] = func.count().filter(inside)
        cols[f"spend_{days}d"] = func.coalesce(func.round(func.sum(p.amount).filter(inside), 2), 0)
    # Grouped by customer_pk + 0, an expression no index orders: PostgreSQL then hashes one sequential pass (as the
    # plain scan does) instead of walking the (customer, at) index in random heap order, ten times slower here.
    who = (p.customer_pk + 0).label("pk")
    agg = (select(who, *(v.label(k) for k, v in cols.items()))
           .where(p.at >= now - timedelta(days=max(WINDOWS))).group_by(who).subquery("figs"))
    changed = or_(*(getattr(Customer, k) != agg.c[k] for k in cols))
    await session.execute(
        update(Customer).where(Customer.id == agg.c.pk, changed).values({k: agg.c[k] for k in cols})
        .execution_options(synchronize_session=False))
    # nothing bought in 365 days (last_purchase_at is the running figure): every window is empty
    gone = or_(Customer.last_purchase_at.is_(None), Customer.last_purchase_at < now - timedelta(days=max(WINDOWS)))
    await session.execute(
        update(Customer).where(Customer.purchases_365d != 0, gone).values(dict.fromkeys(cols, 0))
        .execution_options(synchronize_session=False))


async def stored_mean_basket(session: AsyncSession, days: int) -> float | None:
    """mean_basket from the stored figures (a scan of members, no purchases)."""
    n, s = stored_window(days)
    value = (await session.execute(select(func.avg(s * 1.0 / func.nullif(n, 0))).where(n > 0))).scalar_one_or_none()
    return None if value is None else float(value)


async def rebuild_stages(session: AsyncSession, cfg: CustomersSettings, now: datetime) -> float | None:
    """Every member's stage in one set-based UPDATE that writes only the rows whose stage changes (rewriting a
    million unchanged rows is most of the cost on PostgreSQL): the high-potential ones by their recent figures
    (the stored window when active_days is one of 30/90/365, else one GROUP BY over the active window), everyone
    else by dates; then today's stage counts (models.customer_stage_day). Returns the mean basket it used."""
    c = Customer.__table__.c
    cuts = stage_cuts(cfg, now)
    stored = window_columns(cfg.active_days)
    mean = (await stored_mean_basket(session, cfg.active_days) if stored
            else await mean_basket(session, cfg.active_days, now))
    whens: list[Any] = []
    if mean is not None:
        threshold = cfg.high_potential_basket_times_mean * mean
        if stored:
            n, s = stored
            whens.append((and_(n >= cfg.high_potential_purchases, n > 0, s * 1.0 / func.nullif(n, 0) > threshold),
                          "high_potential"))
        else:
            recent = (
                select(CustomerPurchase.customer_pk)
                .where(CustomerPurchase.at >= cuts.active)
                .group_by(CustomerPurchase.customer_pk)
                .having(and_(func.count() >= cfg.high_potential_purchases,
                             func.sum(CustomerPurchase.amount) * 1.0 / func.count() > threshold))
            )
            whens.append((c.id.in_(recent), "high_potential"))
    by_dates = stage_by_dates(cuts, c.joined_at, c.last_purchase_at)
    stage = case(*whens, else_=by_dates) if whens else by_dates
    await session.execute(update(Customer).where(c.stage != stage).values(stage=stage)
                          .execution_options(synchronize_session=False))
    await snapshot_stages(session, now)
    return mean
