"""Safety stock from a file: a job row per upload (the progress bar reads it) and the set-based batch that applies
one slice of rows, audited like a single edit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import String, Text, insert, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base
from models.base import insert_for as _insert_for
from models.console_settings import SAFETY_STOCK, SettingChange
from models.stock import StockLevel


class SafetyImport(Base):
    __tablename__ = "safety_imports"

    id: Mapped[int] = mapped_column(primary_key=True)
    userid: Mapped[str] = mapped_column(String(64), index=True)
    filename: Mapped[str] = mapped_column(String(160))
    total: Mapped[int]
    done: Mapped[int] = mapped_column(default=0)
    changed: Mapped[int] = mapped_column(default=0)
    state: Mapped[str] = mapped_column(String(16), default="running")  # running | done | failed
    message: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


@dataclass(frozen=True)
class SafetyRow:
    store_id: int
    sku_id: int
    value: int
    scope: str  # "S001 A001": what the audit list shows


async def apply_batch(
    session: AsyncSession, job: SafetyImport, rows: list[SafetyRow], *, person: str, now: datetime
) -> int:
    """Set these rows' safety stock (levels created where missing), audit each change, advance the job; returns
    how many changed. The caller commits."""
    insert_level = _insert_for(session)
    await session.execute(
        insert_level(StockLevel).on_conflict_do_nothing(index_elements=["store_id", "sku_id"]),
        [{"store_id": r.store_id, "sku_id": r.sku_id, "on_hand": 0, "safety_stock": 0} for r in rows],
    )
    pairs = [(r.store_id, r.sku_id) for r in rows]
    found = await session.execute(
        select(StockLevel.id, StockLevel.store_id, StockLevel.sku_id, StockLevel.safety_stock)
        .where(tuple_(StockLevel.store_id, StockLevel.sku_id).in_(pairs)).with_for_update()
    )
    levels = {(store_id, sku_id): (ident, safety) for ident, store_id, sku_id, safety in found}
    updates: list[dict[str, Any]] = []
    audits: list[dict[str, Any]] = []
    for r in rows:
        ident, old = levels[(r.store_id, r.sku_id)]
        if old == r.value:
            continue
        levels[(r.store_id, r.sku_id)] = (ident, r.value)  # a pair twice in one file: the last line wins
        updates.append({"id": ident, "safety_stock": r.value})
        audits.append({"at": now, "userid": job.userid, "person": person, "setting": SAFETY_STOCK, "scope": r.scope,
                       "store_id": r.store_id, "old_value": str(old), "new_value": str(r.value),
                       "source": job.filename})
    if updates:
        await session.execute(update(StockLevel), updates)
        await session.execute(insert(SettingChange), audits)
    job.done += len(rows)
    job.changed += len(updates)
    return len(updates)
