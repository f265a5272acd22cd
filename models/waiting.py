"""Read-only views of what waits on a person: their pending approvals (待审批) and their open transfers (我的调拨)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from models.catalog import Sku
from models.count import StockCount
from models.org import Staff, Store
from models.transfer import STATE_NAMES, Transfer, TransferApproval, TransferStep, lines_of

OPEN_TRANSFER_STATES = ("requested", "approved", "shipped")
ESCALATED_STEP = "approval_escalate"  # scheduler/transfer_jobs.py: the step that brings the admins in


@dataclass(frozen=True)
class TransferView:
    id: int
    state: str
    state_name: str
    source: str  # "静安店(S002)"
    dest: str
    goods: str  # "A001 农夫山泉 550ml ×5、…"
    requested_by: str  # a name when the directory knows the userid
    created_at: datetime
    direction: str  # "in" | "out" | "" (neither side is the viewer's store)


@dataclass(frozen=True)
class CountView:
    id: int
    store: str
    sku: str  # "A001 农夫山泉 550ml"
    counted: int
    system: int
    counted_by: str
    counted_at: datetime

    @property
    def diff(self) -> int:
        return self.counted - self.system


def _label(store: Store) -> str:
    return f"{store.name}({store.code})"


def _active_supervisor(region_id: object) -> object:
    boss = aliased(Staff)
    return exists().where(boss.region_id == region_id, boss.role == "supervisor", boss.active)


def _active_manager(store_id: object) -> object:
    boss = aliased(Staff)
    return exists().where(boss.store_id == store_id, boss.role == "manager", boss.active)


async def _names(session: AsyncSession, userids: set[str]) -> dict[str, str]:
    if not userids:
        return {}
    rows = await session.execute(select(Staff.userid, Staff.name).where(Staff.userid.in_(userids)))
    return {str(userid): str(name) for userid, name in rows.all()}


async def _views(session: AsyncSession, transfers: list[Transfer], own_store: int | None) -> list[TransferView]:
    names = await _names(session, {t.requested_by for t in transfers})
    out: list[TransferView] = []
    for t in transfers:
        source, dest = await session.get(Store, t.from_store_id), await session.get(Store, t.to_store_id)
        assert source is not None and dest is not None
        field = "shipped" if t.state == "shipped" else "qty"
        goods = "、".join(f"{sku.code} {sku.name} ×{getattr(line, field) or 0}"
                         for line, sku in await lines_of(session, t.id))
        direction = "in" if own_store == t.to_store_id else "out" if own_store == t.from_store_id else ""
        out.append(TransferView(t.id, t.state, STATE_NAMES.get(t.state, t.state), _label(source), _label(dest),
                                goods, names.get(t.requested_by, t.requested_by), t.created_at, direction))
    return out


async def transfers_awaiting(session: AsyncSession, user: Staff) -> list[TransferView]:
    """Requested transfers whose approval is the user's to give: a supervisor's region still pending; for an
    admin, those escalated to the admins or in a region without a supervisor."""
    pending = select(TransferApproval.transfer_id).where(TransferApproval.decision == "pending")
    if user.role == "supervisor" and user.region_id is not None:
        pending = pending.where(TransferApproval.region_id == user.region_id)
    elif user.role == "admin":
        escalated = exists().where(TransferStep.transfer_id == TransferApproval.transfer_id,
                                   TransferStep.step == ESCALATED_STEP)
        pending = pending.where(or_(~_active_supervisor(TransferApproval.region_id), escalated))  # type: ignore[operator]
    else:
        return []
    stmt = select(Transfer).where(Transfer.state == "requested", Transfer.id.in_(pending)).order_by(Transfer.id)
    return await _views(session, list((await session.execute(stmt)).scalars()), None)


async def counts_awaiting(session: AsyncSession, user: Staff) -> list[CountView]:
    """Pending count differences the user is the approver of: the store's manager; the region's supervisor for a
    store without one; an admin where neither exists (the same order the 盘点 flow picks the approver in)."""
    stmt = (
        select(StockCount, Store, Sku).join(Store, Store.id == StockCount.store_id)
        .join(Sku, Sku.id == StockCount.sku_id).where(StockCount.state == "pending")
    )
    if user.role == "manager" and user.store_id is not None:
        stmt = stmt.where(StockCount.store_id == user.store_id)
    elif user.role == "supervisor" and user.region_id is not None:
        stmt = stmt.where(Store.region_id == user.region_id, ~_active_manager(Store.id))  # type: ignore[operator]
    elif user.role == "admin":
        stmt = stmt.where(and_(~_active_manager(Store.id), ~_active_supervisor(Store.region_id)))  # type: ignore[operator]
    else:
        return []
    rows = (await session.execute(stmt.order_by(StockCount.id))).all()
    names = await _names(session, {c.counted_by for c, _, _ in rows})
    return [CountView(c.id, _label(store), f"{sku.code} {sku.name}", c.counted, c.system_qty,
                      names.get(c.counted_by, c.counted_by), c.counted_at) for c, store, sku in rows]


async def open_transfers(session: AsyncSession, user: Staff, limit: int = 15) -> list[TransferView]:
    """Transfers not finished yet: the user's store's (in and out); a supervisor's region's; an admin's all."""
    stmt = select(Transfer).where(Transfer.state.in_(OPEN_TRANSFER_STATES))
    if user.store_id is not None:
        stmt = stmt.where(or_(Transfer.from_store_id == user.store_id, Transfer.to_store_id == user.store_id))
    elif user.role == "supervisor" and user.region_id is not None:
        region_stores = select(Store.id).where(Store.region_id == user.region_id)
        stmt = stmt.where(or_(Transfer.from_store_id.in_(region_stores), Transfer.to_store_id.in_(region_stores)))
    elif user.role != "admin":
        return []
    transfers = list((await session.execute(stmt.order_by(Transfer.id).limit(limit + 1))).scalars())
    return await _views(session, transfers, user.store_id)
