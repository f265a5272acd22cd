"""Sample rows for the board tests: stock problems, counts, transfers, tasks, photos and points in both regions."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from PIL import Image
from sqlalchemy.ext.asyncio import AsyncSession

from models.campaign import Campaign
from models.count import StockCount
from models.customer import Customer, CustomerPurchase
from models.points import PointsEntry
from models.segment import Segment, SegmentMember
from models.stock import book_move
from models.task import TaskInstance
from models.task_proof import TaskPhoto
from models.transfer import Transfer, TransferLine
from tests.factories import Chain

NOW = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)  # FakeClock's start


@dataclass
class BoardRows:
    photos: dict[str, int]  # store code -> photo id
    transfers: dict[str, int]  # "shipped_r1" / "requested_r2" -> id


async def seed_board_rows(session: AsyncSession, chain: Chain, data_dir: Path) -> BoardRows:
    st, sk, sf = chain.stores, chain.skus, chain.staff
    at = NOW - timedelta(days=1)
    # S001: A001 negative, A002 below safety; S003: A003 below safety
    for store, sku, qty, ref in (("S001", "A001", -22, "sale:b1"), ("S001", "A002", -17, "sale:b2"),
                                 ("S003", "A003", -16, "sale:b3")):
        await book_move(session, store_id=st[store].id, sku_id=sk[sku].id, kind="sale", qty=qty, at=at, ref=ref,
                        actor="s1" if store == "S001" else "s4")
    for store, counted, state in (("S001", 9, "pending"), ("S003", 2, "pending"), ("S001", 20, "booked")):
        session.add(StockCount(store_id=st[store].id, sku_id=sk["A004"].id, counted=counted, system_qty=20,
                               state=state, counted_by="m1" if store == "S001" else "m3", counted_at=at,
                               created_at=at))
    shipped = Transfer(from_store_id=st["S002"].id, to_store_id=st["S001"].id, state="shipped", requested_by="m1",
                       emergency=True, created_at=at - timedelta(days=2), shipped_at=at - timedelta(days=2))
    requested = Transfer(from_store_id=st["S004"].id, to_store_id=st["S003"].id, state="requested",
                         requested_by="m3", created_at=at)
    session.add_all([shipped, requested])
    await session.flush()
    session.add_all([TransferLine(transfer_id=shipped.id, sku_id=sk["A005"].id, qty=6, shipped=6),
                     TransferLine(transfer_id=requested.id, sku_id=sk["A003"].id, qty=4)])
    tasks = {}
    for store, assignee, state, proof, kind in (("S001", "s1", "done", "photo", "scheduled"),
                                                ("S003", "s4", "missed", "count", "scheduled"),
                                                ("S003", "m3", "open", "confirm", "improvement")):
        t = TaskInstance(template_key=f"t-{store}-{kind}", kind=kind, title={"photo": "晨检", "count": "闭店盘点",
                         "confirm": "闭店盘点改进计划"}[proof], proof=proof, store_id=st[store].id,
                         assignee_id=sf[assignee].id, period_key="2026-11-23T09:00", fire_at=at, due_at=at,
                         closes_at=at + timedelta(hours=12), points=10, state=state, created_at=at,
                         completed_at=at if state == "done" else None)
        session.add(t)
        await session.flush()
        tasks[store, kind] = t
    photos = {}
    (data_dir / "photos" / "ab").mkdir(parents=True, exist_ok=True)
    for store, who, flagged in (("S001", "s1", False), ("S003", "s4", True)):
        rel = f"photos/ab/{store}.jpg"
        (data_dir / rel).write_bytes(_jpeg((40, 140, 90) if store == "S001" else (200, 80, 60)))
        p = TaskPhoto(msg_id=f"m-{store}", staff_id=sf[who].id, store_id=st[store].id,
                      task_id=tasks[store, "scheduled"].id, media_id="media", state="accepted", path=rel,
                      received_at=at, exif_at=at - timedelta(hours=5), latitude=31.0, longitude=121.0,
                      distance_m=25.0 if not flagged else 2400.0, flagged=flagged)
        session.add(p)
        await session.flush()
        photos[store] = p.id
    for who, store, pts in (("s1", "S001", 30), ("s3", "S002", 50), ("s4", "S003", 20)):
        session.add(PointsEntry(staff_id=sf[who].id, task_id=tasks.get((store, "scheduled"),
                                tasks["S001", "scheduled"]).id, store_id=st[store].id,
                                region_id=st[store].region_id, month="2026-11", points=pts, reason="done",
                                created_at=at))
    await _customers(session, chain, at)
    return BoardRows(photos=photos, transfers={"shipped_r1": shipped.id, "requested_r2": requested.id})


async def _customers(session: AsyncSession, chain: Chain, at: datetime) -> None:
    """Members of S001 (three) and S003 (two) in several stages, purchases over two months, a segment and a
    draft campaign with a problem."""
    members = []
    for i, (store, stage, months_ago) in enumerate((("S001", "active", 1), ("S001", "new", 0),
                                                    ("S001", "at_risk", 2), ("S003", "dormant", 3),
                                                    ("S003", "high_potential", 1))):
        c = Customer(customer_id=f"C{i:03d}", name=f"会员{i}", phone="", home_store_id=chain.stores[store].id,
                     joined_at=at - timedelta(days=30 * months_ago), stage=stage, created_at=at, updated_at=at)
        session.add(c)
        members.append(c)
    await session.flush()
    for i, c in enumerate(members):
        for k in range(i % 3 + 1):
            session.add(CustomerPurchase(customer_pk=c.id, sale_id=f"cs-{i}-{k}", store_id=c.home_store_id,
                                         at=at - timedelta(days=20 * k), amount=Decimal("35.50")))
    seg = Segment(key="high_potential", name="高潜会员", rule={"stage": "high_potential"}, version=1,
                  source="config", created_at=at, updated_at=at, built_at=at, built_version=1, count=2)
    session.add(seg)
    await session.flush()
    session.add_all([SegmentMember(segment_pk=seg.id, customer_pk=members[0].id),
                     SegmentMember(segment_pk=seg.id, customer_pk=members[4].id)])
    session.add(Campaign(key="winter", name="冬季回访", segment_key="high_potential", text="天冷了，来店里坐坐",
                         offer={"title": "满50减10", "kind": "amount", "value": 10}, holdout_percent=10,
                         attribution_days=14, expected_min=100, owner="admin", state="draft", audience=2,
                         treatment=2, holdout=0, reachable=0, problems=["人数 2 少于预期的 100"], created_at=at))


def _jpeg(color: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(out, "JPEG")
    return out.getvalue()
