"""The demo's customer loop: members with months of purchase history (every stage and the seed's high-potential
rule populated), their WeCom contacts in the sandbox, segments, and two launched campaigns — one healthy, one that
reproduces the seed's 0.3% case (a new-members-only audience for a chain-wide offer) and gets caught."""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.config import Settings
from bot.config_customers import CustomersSettings
from bot.demo.data import STAFF, STORES
from bot.importing.importer import import_files
from handlers.campaign_health import check
from models.campaign import Campaign, launch, preflight
from models.customer import Customer, CustomerPurchase
from models.customer_stage_day import CustomerStageDay, local_date
from models.org import Store
from models.segment import rebuild_all, upsert_segment

SEED = 20261202
HISTORY_DAYS = 27  # stage snapshots before today, so the 客户 board's stage chart shows a trend
MEMBERS = 240
OWNER = "caoyang"  # the admin owns the demo campaigns, so the store phones stay as the other walkthroughs expect
SEGMENTS: dict[str, tuple[str, dict[str, Any]]] = {
    "high_potential": ("高潜会员", {"all": [{"metric": "purchases", "days": 30, "op": ">=", "value": 3},
                                          {"metric": "avg_basket", "days": 30, "op": ">", "times_mean": 1.5}]}),
    "dormant": ("沉睡会员", {"stage": "dormant"}),
    "new_members": ("新会员", {"stage": "new"}),
}
# (kind, how many, days since joined, purchase plan: list of (days ago range, basket range))
PLAN: list[tuple[str, int, tuple[int, int], list[tuple[tuple[int, int], tuple[int, int]]]]] = [
    ("high_potential", 18, (90, 400), [((0, 29), (160, 260))] * 4 + [((40, 120), (80, 150))] * 2),
    ("active", 60, (90, 400), [((0, 29), (30, 90))] * 2 + [((30, 150), (30, 90))] * 2),
    ("at_risk", 40, (120, 400), [((31, 59), (30, 90)), ((60, 150), (30, 90))]),
    ("dormant", 50, (200, 500), [((61, 179), (30, 90)), ((180, 300), (30, 90))]),
    ("lost", 37, (400, 700), [((181, 360), (20, 60))]),
    ("new", 35, (1, 25), [((0, 5), (20, 80))]),
]


@dataclass(frozen=True)
class DemoMember:
    customer_id: str
    store: str
    follow: str
    reachable: bool
    joined_days: int
    purchases: list[tuple[int, int]]  # (days ago, basket yuan)


def demo_members() -> list[DemoMember]:
    rng = random.Random(SEED)
    stores = list(STORES)
    clerks = {s: [u for u, (_, role, store, _) in STAFF.items() if store == s and role == "staff"] for s in stores}
    out: list[DemoMember] = []
    for _kind, count, joined, plan in PLAN:
        for _ in range(count):
            n = len(out) + 1
            store = stores[n % len(stores)]
            buys = [(rng.randint(*days), rng.randint(*basket)) for days, basket in plan if rng.random() < 0.95
                    or days[0] == 0]
            out.append(DemoMember(f"M{n:04d}", store, rng.choice(clerks[store]), rng.random() < 0.85,
                                  rng.randint(*joined), buys))
    return out


def write_customers(folder: Path, now: datetime) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "customers.csv"
    rng = random.Random(SEED + 1)
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["customer_id", "name", "phone", "home_store", "external_userid", "follow_userid", "joined_at",
                    "tags"])
        for m in demo_members():
            phone = f"139{rng.randint(0, 10**8 - 1):08d}"
            tags = ";".join(t for t in ("母婴", "零食控", "vip") if rng.random() < 0.2)
            w.writerow([m.customer_id, f"会员{m.customer_id[1:]}", phone, m.store,
                        f"wm{m.customer_id}" if m.reachable else "", m.follow if m.reachable else "",
                        (now - timedelta(days=m.joined_days)).date().isoformat(), tags])
    return path


def demo_contacts() -> dict[str, dict[str, str]]:
    """Each clerk's WeCom customers in the sandbox; every 12th reachable member has since deleted their clerk."""
    contacts: dict[str, dict[str, str]] = {}
    for i, m in enumerate(m for m in demo_members() if m.reachable):
        if i % 12 != 11:
            contacts.setdefault(m.follow, {})[f"wm{m.customer_id}"] = f"会员{m.customer_id[1:]}"
    return contacts


async def _history(session: AsyncSession, now: datetime) -> None:
    pks = dict((await session.execute(select(Customer.customer_id, Customer.id))).all())
    rows: list[dict[str, Any]] = []
    figures: list[dict[str, Any]] = []
    for m in demo_members():
        pk = pks[m.customer_id]
        buys = [(now - timedelta(days=d, hours=(i * 5) % 12), Decimal(b)) for i, (d, b) in enumerate(m.purchases)]
        rows += [{"customer_pk": pk, "sale_id": f"HIST-{m.customer_id}-{i}", "store_id": None, "at": at,
                  "amount": amount} for i, (at, amount) in enumerate(buys)]
        figures.append({"b_pk": pk, "b_n": len(buys), "b_s": sum((a for _, a in buys), Decimal(0)),
                        "b_last": max((at for at, _ in buys), default=None)})
    await session.execute(insert(CustomerPurchase), rows)
    table = cast(Table, Customer.__table__)
    await session.execute(
        update(table).where(table.c.id == bindparam("b_pk")).values(
            purchases_total=bindparam("b_n"), spend_total=bindparam("b_s"),
            last_purchase_at=bindparam("b_last", type_=table.c.last_purchase_at.type)),
        figures)


def past_stage(m: DemoMember, ago: int, cfg: CustomersSettings, mean: float | None) -> str | None:
    """The member's stage `ago` days back by the rebuild's rule, from their own history (None: not joined yet)."""
    if m.joined_days < ago:
        return None
    bought = [(d - ago, b) for d, b in m.purchases if d >= ago]
    recent = [b for d, b in bought if d <= cfg.active_days]
    if (mean is not None and len(recent) >= cfg.high_potential_purchases
            and sum(recent) / len(recent) > cfg.high_potential_basket_times_mean * mean):
        return "high_potential"
    if m.joined_days - ago <= cfg.new_days:
        return "new"
    since = min((d for d, _ in bought), default=None)
    for stage, days in (("active", cfg.active_days), ("at_risk", cfg.at_risk_days), ("dormant", cfg.dormant_days)):
        if since is not None and since <= days:
            return stage
    return "lost"


async def _stage_history(session: AsyncSession, cfg: CustomersSettings, now: datetime) -> None:
    """HISTORY_DAYS of daily stage counts before today (today's comes from the real rebuild)."""
    stores = dict((await session.execute(select(Store.code, Store.id))).all())
    members = demo_members()
    rows: list[dict[str, Any]] = []
    for ago in range(HISTORY_DAYS, 0, -1):
        baskets = [sum(b for _, b in w) / len(w) for m in members
                   if (w := [(d, b) for d, b in m.purchases if ago <= d <= ago + cfg.active_days])]
        mean = sum(baskets) / len(baskets) if baskets else None
        counts: dict[tuple[str, int | None], int] = {}
        for m in members:
            stage = past_stage(m, ago, cfg, mean)
            if stage is not None:
                key = (stage, stores.get(m.store))
                counts[key] = counts.get(key, 0) + 1
        day = local_date(now - timedelta(days=ago))
        rows += [{"day": day, "stage": st, "store_id": sid, "members": n} for (st, sid), n in counts.items()]
    await session.execute(insert(CustomerStageDay), rows)


async def seed_customer_loop(settings: Settings, sessions: async_sessionmaker[AsyncSession], folder: Path,
                             clock: Clock) -> None:
    """Members through the real importer, their history, segments, and the two campaigns launched."""
    now = clock.now()
    await import_files(sessions, [write_customers(folder, now)], clock=clock)
    async with sessions() as session, session.begin():
        await _history(session, now)
        for key, (name, rule) in SEGMENTS.items():
            await upsert_segment(session, key, name, rule, "api", now)
        await rebuild_all(session, settings.customers, settings.segments, now)
        await _stage_history(session, settings.customers, now)
        offer = {"per_customer": 1, "valid_days": 14}
        for key, name, segment, text, extra in (
            ("trial", "高潜会员新品试用", "high_potential", "新品到店，会员凭券领试用装一份，欢迎来店里试试。",
             {"offer": {**offer, "title": "新品试用装", "kind": "gift", "value": 15, "cap_total": 200},
              "holdout_percent": 20, "expected_min": 10}),
            ("member20", "会员8折", "new_members", "会员日全场8折，结账时报会员号即可用券。",
             {"offer": {**offer, "title": "会员8折券", "kind": "discount", "value": 20, "cap_total": 100},
              "holdout_percent": 10, "expected_min": 150}),
        ):
            campaign = Campaign(key=key, name=name, segment_key=segment, text=text, attribution_days=14,
                                owner=OWNER, state="draft", problems=[], created_at=now, **extra)
            session.add(campaign)
            await preflight(session, campaign, settings.customers, now)
            await session.flush()
            await launch(session, campaign.id, OWNER, settings.customers, now)
        await check(session, settings, now)
