"""A small sample chain for tests, written through the models (and the ledger for opening stock)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from models.catalog import Sku
from models.org import Region, Staff, Store
from models.stock import StockLevel, book_move

OPENING_AT = datetime(2026, 11, 1, tzinfo=UTC)


@dataclass
class Chain:
    regions: dict[str, Region] = field(default_factory=dict)
    stores: dict[str, Store] = field(default_factory=dict)
    staff: dict[str, Staff] = field(default_factory=dict)
    skus: dict[str, Sku] = field(default_factory=dict)


# userid -> (name, role, store code or None, region code or None)
STAFF = {
    "m1": ("王店长", "manager", "S001", "R1"),
    "s1": ("李小妹", "staff", "S001", "R1"),
    "s2": ("张伟", "staff", "S001", "R1"),
    "m2": ("赵店长", "manager", "S002", "R1"),
    "s3": ("钱多多", "staff", "S002", "R1"),
    "m3": ("孙店长", "manager", "S003", "R2"),
    "s4": ("周周", "staff", "S003", "R2"),
    "m4": ("吴店长", "manager", "S004", "R2"),
    "sup1": ("郑督导", "supervisor", None, "R1"),
    "sup2": ("冯督导", "supervisor", None, "R2"),
    "admin": ("陈总", "admin", None, None),
}
STORES = {
    "S001": ("徐汇店", "R1", 31.1880, 121.4365, "chat-S001"),
    "S002": ("静安店", "R1", 31.2290, 121.4480, "chat-S002"),
    "S003": ("天河店", "R2", 23.1291, 113.2644, "chat-S003"),
    "S004": ("福田店", "R2", 22.5431, 114.0579, "chat-S004"),
}
SKUS = {
    "A001": ("6900000000011", "农夫山泉 550ml", "饮料", "瓶", "2.00"),
    "A002": ("6900000000028", "可口可乐 330ml", "饮料", "罐", "3.50"),
    "A003": ("6900000000035", "乐事薯片 原味", "零食", "袋", "7.90"),
    "A004": ("6900000000042", "康师傅红烧牛肉面", "速食", "桶", "4.50"),
    "A005": ("6900000000059", "维达抽纸 3包", "日用", "提", "12.90"),
}
OPENING_ON_HAND = 20
SAFETY_STOCK = 5


async def seed_chain(session: AsyncSession, *, with_stock: bool = True) -> Chain:
    chain = Chain()
    for code, name in (("R1", "华东区"), ("R2", "华南区")):
        chain.regions[code] = Region(code=code, name=name)
    session.add_all(chain.regions.values())
    await session.flush()
    for code, (name, region, lat, lng, chat) in STORES.items():
        chain.stores[code] = Store(
            code=code, name=name, region_id=chain.regions[region].id, latitude=lat, longitude=lng,
            chat_id=chat, timezone="Asia/Shanghai",
        )
    session.add_all(chain.stores.values())
    await session.flush()
    for userid, (name, role, store, region) in STAFF.items():
        chain.staff[userid] = Staff(
            userid=userid, name=name, role=role,
            store_id=chain.stores[store].id if store else None,
            region_id=chain.regions[region].id if region else None,
        )
    for code, (barcode, name, category, unit, price) in SKUS.items():
        chain.skus[code] = Sku(code=code, barcode=barcode, name=name, category=category, unit=unit,
                               price=Decimal(price))
    session.add_all([*chain.staff.values(), *chain.skus.values()])
    await session.flush()
    if with_stock:
        for store in chain.stores.values():
            for sku in chain.skus.values():
                session.add(StockLevel(store_id=store.id, sku_id=sku.id, on_hand=0, safety_stock=SAFETY_STOCK))
                await session.flush()
                await book_move(session, store_id=store.id, sku_id=sku.id, kind="opening", qty=OPENING_ON_HAND,
                                at=OPENING_AT, ref="seed", actor="import")
    return chain
