"""Set-based book_move for absolute counts (the master-data import): the same ledger as models.stock.book_move."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models.stock import StockLevel, StockMove

CHUNK = 5000  # rows per executemany in set_levels


@dataclass
class LevelCounts:
    """What set_levels did: levels created, updated (on-hand or safety stock), left as they were; moves booked."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    moves: int = 0


def _offsets(total: int, size: int) -> Iterable[int]:
    return range(0, total, size)


async def _executemany(session: AsyncSession, stmt: Any, params: Sequence[dict[str, Any]]) -> None:
    for start in range(0, len(params), CHUNK):
        await session.execute(stmt, params[start : start + CHUNK])


def _move_row(store_id: int, sku_id: int, kind: str, qty: int, balance: int, ref: str, actor: str,
              at: datetime) -> dict[str, Any]:
    return {"store_id": store_id, "sku_id": sku_id, "kind": kind, "qty": qty, "balance_after": balance,
            "ref": ref, "actor": actor, "note": None, "created_at": at}


async def set_levels(
    session: AsyncSession, targets: Sequence[tuple[int, int, int, int | None]], *, at: datetime, ref: str,
    actor: str, write_chunks: Callable[[int, int], Iterable[int]] | None = None,
) -> LevelCounts:
    """book_move for absolute counts, set-based (the master-data import): each (store id, sku id, on_hand, safety
    stock or None to keep it) books exactly what book_move would — `opening` for a new level, `import_adjustment`
    for a changed on-hand, nothing for the same — with levels read once (locked) and written with executemany.
    `write_chunks(total, size)` yields the offsets of the moves written (a progress bar)."""
    counts = LevelCounts()
    # Lock the file's stores' levels (PostgreSQL) so a sale booked meanwhile waits instead of being overwritten.
    level_rows = await session.execute(
        select(StockLevel.id, StockLevel.store_id, StockLevel.sku_id, StockLevel.on_hand, StockLevel.safety_stock)
        .where(StockLevel.store_id.in_({store_id for store_id, *_ in targets}))
        .with_for_update()
    )
    levels = {(store_id, sku_id): (ident, on_hand, safety) for ident, store_id, sku_id, on_hand, safety in level_rows}
    new_levels: list[dict[str, Any]] = []
    moves: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []  # on-hand (and maybe safety) changed
    safety_only: list[dict[str, Any]] = []
    for store_id, sku_id, on_hand, safety in targets:
        level = levels.get((store_id, sku_id))
        if level is None:
            new_levels.append({"store_id": store_id, "sku_id": sku_id, "on_hand": on_hand,
                               "safety_stock": safety or 0, "last_moved_at": at if on_hand else None})
            if on_hand:
                moves.append(_move_row(store_id, sku_id, "opening", on_hand, on_hand, ref, actor, at))
            counts.created += 1
            continue
        ident, old_on_hand, old_safety = level
        safety = old_safety if safety is None else safety
        if on_hand != old_on_hand:
            diff = on_hand - old_on_hand
            changed.append({"b_id": ident, "b_diff": diff, "b_safety": safety, "b_at": at})
            moves.append(_move_row(store_id, sku_id, "import_adjustment", diff, on_hand, ref, actor, at))
            counts.updated += 1
        elif safety != old_safety:
            safety_only.append({"b_id": ident, "b_safety": safety})
            counts.updated += 1
        else:
            counts.unchanged += 1
    levels_table = cast(Table, StockLevel.__table__)
    col = levels_table.c
    await _executemany(session, insert(levels_table), new_levels)
    await _executemany(
        session,
        update(levels_table).where(col.id == bindparam("b_id")).values(
            on_hand=col.on_hand + bindparam("b_diff"), safety_stock=bindparam("b_safety"),
            last_moved_at=bindparam("b_at", type_=col.last_moved_at.type),
        ),
        changed,
    )
    await _executemany(
        session,
        update(levels_table).where(col.id == bindparam("b_id")).values(safety_stock=bindparam("b_safety")),
        safety_only,
    )
    moves_table = cast(Table, StockMove.__table__)
    for start in (write_chunks or _offsets)(len(moves), CHUNK):
        await session.execute(insert(moves_table), moves[start : start + CHUNK])
    counts.moves = len(moves)
    return counts
