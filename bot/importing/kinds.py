"""The four master-data kinds: validate every row of a file, then upsert by natural key (stock: set-based)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.importing.rows import ImportJob, ImportReport, Row
from models.catalog import Sku
from models.org import ROLES, Region, Staff, Store
from models.stock_set import set_levels

CHUNK = 5000  # rows per executemany: big enough to be fast, small enough for a lively progress bar
DEFAULT_TZ = "Asia/Shanghai"


def _first_seen(job: ImportJob, seen: dict[Any, int], key: Any, row: Row, what: str) -> None:
    if key in seen:
        raise job.bad(row, f"duplicate {what} (first on line {seen[key]})")
    seen[key] = row.line


def _apply(obj: object, values: dict[str, Any], report: ImportReport) -> None:
    """Set changed attributes on an existing row and count it as updated or unchanged."""
    changed = {k: v for k, v in values.items() if getattr(obj, k) != v}
    for key, value in changed.items():
        setattr(obj, key, value)
    if changed:
        report.updated += 1
    else:
        report.unchanged += 1


class _Regions:
    """Regions by code or name; a name not seen before becomes a new region (code = name = the cell)."""

    def __init__(self, session: AsyncSession, regions: Iterable[Region]) -> None:
        self.session = session
        self.by_key: dict[str, Region] = {}
        for region in regions:
            self.by_key.setdefault(region.code, region)
            self.by_key.setdefault(region.name, region)

    async def get_or_create(self, key: str) -> Region:
        region = self.by_key.get(key)
        if region is None:
            region = Region(code=key, name=key)
            self.session.add(region)
            await self.session.flush()
            self.by_key[key] = region
        return region

    @classmethod
    async def load(cls, session: AsyncSession) -> _Regions:
        return cls(session, (await session.scalars(select(Region))).all())


async def import_stores(session: AsyncSession, job: ImportJob, report: ImportReport) -> None:
    seen: dict[Any, int] = {}
    parsed: list[tuple[str, str, dict[str, Any]]] = []
    for row in job.bar(job.rows, "check"):
        code = job.text(row, "code", required=True, max_len=64)
        _first_seen(job, seen, code, row, f"store code {code!r}")
        tz = job.text(row, "timezone", max_len=64) or DEFAULT_TZ
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise job.bad(row, f"unknown timezone {tz!r} (e.g. Asia/Shanghai)") from None
        values = {
            "name": job.text(row, "name", required=True, max_len=128),
            "latitude": job.coordinate(row, "latitude", 90),
            "longitude": job.coordinate(row, "longitude", 180),
            "chat_id": job.text(row, "chat_id", max_len=64) or None,
            "timezone": tz,
        }
        parsed.append((code, job.text(row, "region", required=True, max_len=64), values))
    regions = await _Regions.load(session)
    existing = {s.code: s for s in (await session.scalars(select(Store))).all()}
    for code, region_key, values in parsed:
        values["region_id"] = (await regions.get_or_create(region_key)).id
        store = existing.get(code)
        if store is None:
            session.add(Store(code=code, **values))
            report.created += 1
        else:
            _apply(store, values, report)
    await session.flush()


async def import_staff(session: AsyncSession, job: ImportJob, report: ImportReport) -> None:
    stores = {s.code: s for s in (await session.scalars(select(Store))).all()}
    regions = await _Regions.load(session)
    existing = {s.userid: s for s in (await session.scalars(select(Staff))).all()}
    seen: dict[Any, int] = {}
    for row in job.bar(job.rows, "import"):
        userid = job.text(row, "userid", required=True, max_len=64)
        _first_seen(job, seen, userid, row, f"userid {userid!r}")
        name = job.text(row, "name", required=True, max_len=128)
        role = job.text(row, "role", required=True).lower()
        if role not in ROLES:
            raise job.bad(row, f"role must be one of {', '.join(ROLES)}, got {role!r}")
        store_code = job.text(row, "store", max_len=64)
        store = stores.get(store_code) if store_code else None
        if store_code and store is None:
            raise job.bad(row, f"unknown store {store_code!r} (import it in stores first)")
        region_key = job.text(row, "region", max_len=64)
        if role in ("staff", "manager") and store is None:
            raise job.bad(row, f"a {role} needs a store")
        if role == "supervisor" and not region_key and store is None:
            raise job.bad(row, "a supervisor needs a region")
        region_id = store.region_id if store else None
        if region_key:
            region = await regions.get_or_create(region_key)
            if store is not None and store.region_id != region.id:
                raise job.bad(row, f"store {store_code!r} is not in region {region_key!r}")
            region_id = region.id
        values = {"name": name, "role": role, "store_id": store.id if store else None, "region_id": region_id,
                  "active": True}
        person = existing.get(userid)
        if person is None:
            session.add(Staff(userid=userid, **values))
            report.created += 1
        else:
            _apply(person, values, report)
    await session.flush()


async def import_skus(session: AsyncSession, job: ImportJob, report: ImportReport) -> None:
    seen: dict[Any, int] = {}
    seen_barcodes: dict[Any, int] = {}
    parsed: list[tuple[Row, str, dict[str, Any]]] = []
    for row in job.bar(job.rows, "check"):
        code = job.text(row, "code", required=True, max_len=64)
        _first_seen(job, seen, code, row, f"sku code {code!r}")
        barcode = job.text(row, "barcode", max_len=64) or None
        if barcode is not None:
            _first_seen(job, seen_barcodes, barcode, row, f"barcode {barcode!r}")
        values: dict[str, Any] = {
            "barcode": barcode,
            "name": job.text(row, "name", required=True, max_len=256),
            "category": job.text(row, "category", max_len=128) or None,
            "unit": job.text(row, "unit", max_len=32) or None,
            "price": job.decimal(row, "price"),
        }
        parsed.append((row, code, values))
    existing = {s.code: s for s in (await session.scalars(select(Sku))).all()}
    # A barcode may move between SKUs inside one file; it may not land on a SKU that keeps another one's code.
    final = {code: s.barcode for code, s in existing.items() if s.barcode}
    final.update({code: v["barcode"] for _, code, v in parsed})
    owners: dict[str, list[str]] = {}
    for code, barcode in final.items():
        if barcode:
            owners.setdefault(barcode, []).append(code)
    for row, code, values in parsed:
        barcode = values["barcode"]
        others = [c for c in owners.get(barcode, []) if c != code] if barcode else []
        if others:
            raise job.bad(row, f"barcode {barcode!r} is already used by sku {others[0]!r}")
    for _, code, values in parsed:
        sku = existing.get(code)
        if sku is None:
            session.add(Sku(code=code, **values))
            report.created += 1
        else:
            _apply(sku, values, report)
    await session.flush()


async def _execute_chunks(session: AsyncSession, stmt: Any, params: Sequence[dict[str, Any]]) -> None:
    for start in range(0, len(params), CHUNK):
        await session.execute(stmt, params[start : start + CHUNK])


def _stock_rows(job: ImportJob, stores: dict[str, int], skus: dict[str, int]) -> list[tuple[int, int, int, int | None]]:
    """Every row checked: (store id, sku id, on_hand, safety_stock or None to keep the current line)."""
    parsed = []
    seen: dict[Any, int] = {}
    for row in job.bar(job.rows, "check"):
        store_code = job.text(row, "store", required=True)
        sku_code = job.text(row, "sku", required=True)
        store_id = stores.get(store_code)
        if store_id is None:
            raise job.bad(row, f"unknown store {store_code!r}")
        sku_id = skus.get(sku_code)
        if sku_id is None:
            raise job.bad(row, f"unknown sku {sku_code!r}")
        _first_seen(job, seen, (store_id, sku_id), row, f"row for store {store_code!r} and sku {sku_code!r}")
        on_hand = cast(int, job.whole(row, "on_hand", required=True))
        parsed.append((store_id, sku_id, on_hand, job.whole(row, "safety_stock")))
    return parsed


async def import_stock(session: AsyncSession, job: ImportJob, report: ImportReport) -> None:
    """Every row checked first, then booked by models.stock.set_levels (the set-based book_move for counts)."""
    stores: dict[str, int] = dict(list(await session.execute(select(Store.code, Store.id))))
    skus: dict[str, int] = {}
    for code, barcode, ident in await session.execute(select(Sku.code, Sku.barcode, Sku.id)):
        skus[code] = ident
        if barcode:
            skus.setdefault(barcode, ident)
    parsed = _stock_rows(job, stores, skus)
    ref = f"import:{Path(job.file).name}"[:128]
    booked = await set_levels(session, parsed, at=job.at, ref=ref, actor="import",
                              write_chunks=lambda total, size: job.chunks(total, size, "write"))
    report.created += booked.created
    report.updated += booked.updated
    report.unchanged += booked.unchanged
    report.moves = booked.moves
