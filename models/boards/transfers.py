"""调拨 board: transfers waiting for approval, in transit, overdue for receipt, and shortages on receipt."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.boards.filters import Filters, Selection
from models.catalog import Sku
from models.transfer import STATE_NAMES, Transfer, TransferLine

ROW_LIMIT = 100
SECTIONS = ("waiting", "in_transit", "overdue", "short")
SECTION_NAMES = {"waiting": "待审批", "in_transit": "运输中", "overdue": "超时未签收", "short": "签收短缺"}


@dataclass
class TransferRow:
    transfer_id: int
    from_store_id: int
    to_store_id: int
    state: str
    urgent: bool
    requested_by: str
    created_at: datetime
    shipped_at: datetime | None
    received_at: datetime | None
    lines: list[tuple[str, str, int, int | None, int | None]] = field(default_factory=list)  # code, name, qty,…

    @property
    def state_name(self) -> str:
        return STATE_NAMES.get(self.state, self.state)

    @property
    def lines_text(self) -> str:
        return "；".join(f"{code} {name} ×{qty}" for code, name, qty, _, _ in self.lines)

    @property
    def missing(self) -> int:
        return sum((shipped or 0) - (received or 0) for _, _, _, shipped, received in self.lines
                   if received is not None)


@dataclass
class TransfersBoard:
    sections: dict[str, list[TransferRow]] = field(default_factory=dict)


def _section_conditions(filters: Filters, now: datetime, receipt_hours: float) -> dict[str, object]:
    late = now - timedelta(hours=receipt_hours)
    return {
        "waiting": Transfer.state == "requested",
        "in_transit": Transfer.state == "shipped",
        "overdue": and_(Transfer.state == "shipped", Transfer.shipped_at < late),
        "short": and_(Transfer.state.in_(("received", "partially_received")), Transfer.received_at >= filters.start,
                      Transfer.received_at < filters.end,
                      Transfer.id.in_(select(TransferLine.transfer_id).where(
                          TransferLine.received < TransferLine.shipped))),
    }


async def transfers_board(
    session: AsyncSession, sel: Selection, filters: Filters, *, now: datetime, receipt_hours: float
) -> TransfersBoard:
    """Each section's transfers touching a selected store (as source or destination), oldest first; a category
    keeps transfers with at least one line of it."""
    board = TransfersBoard()
    touching = or_(sel.where(Transfer.from_store_id), sel.where(Transfer.to_store_id))
    by_id: dict[int, list[TransferRow]] = defaultdict(list)
    for name, cond in _section_conditions(filters, now, receipt_hours).items():
        stmt = (
            select(Transfer.id, Transfer.from_store_id, Transfer.to_store_id, Transfer.state, Transfer.urgent,
                   Transfer.requested_by, Transfer.created_at, Transfer.shipped_at, Transfer.received_at)
            .where(cond, touching)  # type: ignore[arg-type]
            .order_by(Transfer.created_at, Transfer.id).limit(ROW_LIMIT)
        )
        if sel.category is not None:
            stmt = stmt.where(Transfer.id.in_(select(TransferLine.transfer_id).where(
                sel.where_category(TransferLine.sku_id))))
        rows = [TransferRow(*r) for r in await session.execute(stmt)]
        board.sections[name] = rows
        for row in rows:
            by_id[row.transfer_id].append(row)
    if by_id:
        lines = select(TransferLine.transfer_id, Sku.code, Sku.name, TransferLine.qty, TransferLine.shipped,
                       TransferLine.received).join(Sku, Sku.id == TransferLine.sku_id).where(
            TransferLine.transfer_id.in_(sorted(by_id))).order_by(TransferLine.transfer_id, Sku.code)
        for tid, code, name, qty, shipped, received in await session.execute(lines):
            for row in by_id[tid]:
                row.lines.append((code, name, qty, shipped, received))
    return board
