"""Transfers between stores: the request → approve → ship → receive state machine and its stock moves.

Every transition is one guarded UPDATE (`... WHERE id = :id AND state IN :expected`): of two concurrent
deciders (two supervisors, a click and a WeCom retry, two server processes) exactly one changes the row and
the other is told the state it found. Stock changes only through `models.stock.book_move`. Shipping (what
leaves the source, never below zero) lives in `models/transfer_ship.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Boolean, ForeignKey, String, UniqueConstraint, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from bot.config import MAX_LINE_QTY as MAX_LINE_QTY  # one cap for sales, counts and transfers
from bot.errors import DomainError, InvalidQuantity, InvalidState, NotAllowed, UnknownEntity
from models.base import Base, insert_for
from models.catalog import Sku, find_sku
from models.org import Staff, Store, store_by_code
from models.stock import book_move, get_level

STATE_NAMES = {
    "requested": "待审批",
    "approved": "已同意，待出库",
    "rejected": "已拒绝",
    "shipped": "已出库，运输中",
    "received": "已签收",
    "partially_received": "已部分签收",
    "cancelled": "已取消",
}
MAX_LINES = 20


class Transfer(Base):
    __tablename__ = "transfers"

    id: Mapped[int] = mapped_column(primary_key=True)
    from_store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"), index=True)
    to_store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"), index=True)
    state: Mapped[str] = mapped_column(String(24), index=True, default="requested")
    requested_by: Mapped[str] = mapped_column(String(64))
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    emergency: Mapped[bool] = mapped_column(Boolean, default=False)  # destination at zero, or marked urgent
    short_at_source: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str | None] = mapped_column(String(256))
    version: Mapped[int] = mapped_column(default=0)  # bumped to take the row lock before a two-step decision
    created_at: Mapped[datetime]
    approved_at: Mapped[datetime | None]
    approved_by: Mapped[str | None] = mapped_column(String(64))
    rejected_at: Mapped[datetime | None]
    rejected_by: Mapped[str | None] = mapped_column(String(64))
    reject_reason: Mapped[str | None] = mapped_column(String(64))  # the reason button the rejecter chose
    shipped_at: Mapped[datetime | None]
    shipped_by: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime | None]
    received_by: Mapped[str | None] = mapped_column(String(64))
    cancelled_at: Mapped[datetime | None]
    cancelled_by: Mapped[str | None] = mapped_column(String(64))


class TransferLine(Base):
    __tablename__ = "transfer_lines"
    __table_args__ = (UniqueConstraint("transfer_id", "sku_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    transfer_id: Mapped[int] = mapped_column(ForeignKey("transfers.id"), index=True)
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id"))
    qty: Mapped[int]
    shipped: Mapped[int | None]
    received: Mapped[int | None]


class TransferApproval(Base):
    """One row per region whose supervisor must approve (source and destination region)."""

    __tablename__ = "transfer_approvals"
    __table_args__ = (UniqueConstraint("transfer_id", "region_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    transfer_id: Mapped[int] = mapped_column(ForeignKey("transfers.id"), index=True)
    region_id: Mapped[int] = mapped_column(ForeignKey("regions.id"))
    decision: Mapped[str] = mapped_column(String(16), default="pending")  # pending | approved | rejected
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None]


class TransferStep(Base):
    """A reminder or escalation that fired: the unique key makes each step fire once, whatever runs it."""

    __tablename__ = "transfer_steps"
    __table_args__ = (UniqueConstraint("transfer_id", "step"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    transfer_id: Mapped[int] = mapped_column(ForeignKey("transfers.id"), index=True)
    step: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]


class TransferFieldError(DomainError):
    """A request refused because of one input field; the API names the field, chat shows user_message."""

    def __init__(self, field: str, message: str, user_message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}", user_message)


@dataclass(frozen=True)
class LineRequest:
    sku: str  # code or barcode
    qty: int


@dataclass(frozen=True)
class Discrepancy:
    sku_id: int
    shipped: int
    received: int


async def _store(session: AsyncSession, field: str, code: str) -> Store:
    store = await store_by_code(session, code) or await store_by_code(session, code.upper())
    if store is None:
        raise TransferFieldError(field, f"no store {code!r}", f"找不到门店 {code}，请检查门店编号（如 S002）。")
    return store


async def create_transfer(
    session: AsyncSession, *, requester: Staff, from_store: str, to_store: str | None, lines: list[LineRequest],
    now: datetime, urgent: bool = False, reason: str | None = None,
) -> Transfer:
    """Validate and record a request; `to_store` None means the requester's own store."""
    if requester.store_id is None or requester.role not in ("staff", "manager"):
        raise NotAllowed(f"{requester.userid} belongs to no store", "只有门店的店长或店员可以发起调拨。")
    source = await _store(session, "from_store", from_store)
    dest = await _store(session, "to_store", to_store) if to_store else await session.get(Store, requester.store_id)
    if dest is None or dest.id != requester.store_id:
        raise TransferFieldError("requested_by", f"{requester.userid} does not work at the destination store",
                                 "只能为自己所在的门店申请调入。")
    if source.id == dest.id:
        raise TransferFieldError("from_store", "source and destination are the same store",
                                 "来源门店不能是本店，请换一个门店。")
    if not 1 <= len(lines) <= MAX_LINES:
        raise TransferFieldError("lines", f"1 to {MAX_LINES} lines needed", f"一张调拨单写 1 到 {MAX_LINES} 个商品。")
    wanted: dict[int, int] = {}
    for i, line in enumerate(lines):
        sku = await find_sku(session, line.sku)
        if sku is None:
            raise TransferFieldError(f"lines.{i}.sku", f"no SKU {line.sku!r}",
                                     f"找不到商品 {line.sku}，请核对编码或条码。")
        if not 0 < line.qty <= MAX_LINE_QTY:
            raise TransferFieldError(f"lines.{i}.qty", f"quantity {line.qty} is not within 1..{MAX_LINE_QTY}",
                                     f"数量 {line.qty} 不合理，请写 1 到 {MAX_LINE_QTY} 之间的整数。")
        wanted[sku.id] = wanted.get(sku.id, 0) + line.qty
    short = emergency = False
    for sku_id, qty in wanted.items():
        src, dst = await get_level(session, source.id, sku_id), await get_level(session, dest.id, sku_id)
        short = short or (src.on_hand if src else 0) < qty
        emergency = emergency or (dst.on_hand if dst else 0) <= 0
    transfer = Transfer(
        from_store_id=source.id, to_store_id=dest.id, state="requested", requested_by=requester.userid,
        urgent=urgent, emergency=emergency or urgent, short_at_source=short, reason=reason, version=0, created_at=now,
    )
    session.add(transfer)
    await session.flush()
    session.add_all(TransferLine(transfer_id=transfer.id, sku_id=s, qty=q) for s, q in wanted.items())
    for region_id in sorted({source.region_id, dest.region_id}):
        session.add(TransferApproval(transfer_id=transfer.id, region_id=region_id, decision="pending"))
    await session.flush()
    return transfer


async def get_transfer(session: AsyncSession, ident: int | str) -> Transfer:
    text = str(ident).strip().lstrip("#")
    transfer = await session.get(Transfer, int(text), populate_existing=True) if text.isdigit() else None
    if transfer is None:
        raise UnknownEntity("transfer", ident, f"找不到调拨单 {ident}，请核对单号。")
    return transfer


async def lines_of(session: AsyncSession, transfer_id: int) -> list[tuple[TransferLine, Sku]]:
    stmt = (
        select(TransferLine, Sku).join(Sku, Sku.id == TransferLine.sku_id)
        .where(TransferLine.transfer_id == transfer_id).order_by(TransferLine.id)
    )
    return [(line, sku) for line, sku in await session.execute(stmt)]


async def approvals_of(session: AsyncSession, transfer_id: int) -> list[TransferApproval]:
    stmt = select(TransferApproval).where(TransferApproval.transfer_id == transfer_id)
    return list((await session.execute(stmt.order_by(TransferApproval.region_id))).scalars())


async def _guarded(
    session: AsyncSession, transfer: Transfer, expected: tuple[str, ...], action: str, **values: object
) -> None:
    """The one way a transfer changes: an UPDATE that only matches the states the action starts from."""
    stmt = (
        update(Transfer).where(Transfer.id == transfer.id, Transfer.state.in_(expected))
        .values(version=Transfer.version + 1, **values).execution_options(synchronize_session=False)
    )
    if (await session.execute(stmt)).rowcount == 0:  # type: ignore[attr-defined]
        current = (await session.execute(select(Transfer.state).where(Transfer.id == transfer.id))).scalar_one()
        raise InvalidState(
            f"transfer {transfer.id} is {current}, cannot {action}",
            f"调拨单 {transfer.id} 当前{STATE_NAMES.get(current, current)}，不能再{action}。",
        )
    await session.refresh(transfer)


def _approver_regions(actor: Staff, approvals: list[TransferApproval]) -> list[int]:
    """The approval rows this actor decides: the admin all of them, a supervisor the one of their region."""
    if actor.role == "admin":
        return [a.region_id for a in approvals]
    if actor.role == "supervisor" and any(a.region_id == actor.region_id for a in approvals):
        return [actor.region_id] if actor.region_id is not None else []
    if actor.role == "supervisor":
        raise NotAllowed(f"{actor.userid} supervises another region",
                         "这张调拨单不归你的区域审批，请让对应区域的督导处理。")
    raise NotAllowed(f"{actor.userid} ({actor.role}) cannot approve",
                     "只有区域督导或管理员可以审批调拨，你的操作未生效。")


async def approve(session: AsyncSession, transfer: Transfer, actor: Staff, now: datetime) -> bool:
    """Record the actor's approval; True when that completed the approvals and the transfer is approved."""
    regions = _approver_regions(actor, await approvals_of(session, transfer.id))
    await _guarded(session, transfer, ("requested",), "审批")  # takes the row lock: deciders queue here
    decided = await session.execute(
        update(TransferApproval)
        .where(TransferApproval.transfer_id == transfer.id, TransferApproval.region_id.in_(regions),
               TransferApproval.decision == "pending")
        .values(decision="approved", decided_by=actor.userid, decided_at=now)
    )
    if decided.rowcount == 0:  # type: ignore[attr-defined]
        raise InvalidState(f"{actor.userid} already approved transfer {transfer.id}",
                           f"你已同意调拨单 {transfer.id}，正在等待另一区域督导审批。")
    pending = await session.execute(
        select(func.count()).where(TransferApproval.transfer_id == transfer.id, TransferApproval.decision == "pending")
    )
    if pending.scalar_one():
        return False
    await _guarded(session, transfer, ("requested",), "同意", state="approved", approved_at=now,
                   approved_by=actor.userid)
    return True


async def reject(session: AsyncSession, transfer: Transfer, actor: Staff, now: datetime,
                 reason: str | None = None) -> None:
    """requested → rejected, with the reason the rejecter chose (None: a plain reject)."""
    regions = _approver_regions(actor, await approvals_of(session, transfer.id))
    await _guarded(session, transfer, ("requested",), "拒绝", state="rejected", rejected_at=now,
                   rejected_by=actor.userid, reject_reason=reason)
    await session.execute(
        update(TransferApproval)
        .where(TransferApproval.transfer_id == transfer.id, TransferApproval.region_id.in_(regions))
        .values(decision="rejected", decided_by=actor.userid, decided_at=now)
    )


async def cancel(session: AsyncSession, transfer: Transfer, actor: Staff, now: datetime) -> None:
    allowed = actor.role == "admin" or actor.userid == transfer.requested_by or (
        actor.role == "manager" and actor.store_id == transfer.to_store_id
    )
    if not allowed:
        raise NotAllowed(f"{actor.userid} cannot cancel transfer {transfer.id}",
                         "只有申请人、调入门店店长或管理员可以取消调拨。")
    await _guarded(session, transfer, ("requested", "approved"), "取消", state="cancelled", cancelled_at=now,
                   cancelled_by=actor.userid)


async def receive(
    session: AsyncSession, transfer: Transfer, actor: Staff, now: datetime, received: dict[int, int] | None = None,
) -> list[Discrepancy]:
    """Shipped → received (or partially_received): books what arrived (transfer_in), returns the shortfalls.

    `received` maps sku_id → quantity that arrived; SKUs not in it arrived as shipped.
    """
    if not (actor.role == "admin" or (actor.store_id == transfer.to_store_id and actor.role in ("manager", "staff"))):
        raise NotAllowed(f"{actor.userid} cannot receive transfer {transfer.id}", "只有调入门店的店员或店长可以签收。")
    lines = await lines_of(session, transfer.id)
    received = received or {}
    unknown = set(received) - {line.sku_id for line, _ in lines}
    if unknown:
        raise InvalidQuantity(f"SKUs {sorted(unknown)} are not on transfer {transfer.id}",
                              "签收的商品不在这张调拨单上，请核对。")
    counts: dict[int, int] = {}
    for line, sku in lines:
        shipped = line.shipped or 0
        got = received.get(line.sku_id, shipped)
        if not 0 <= got <= shipped:
            raise InvalidQuantity(f"received {got} of {sku.code}, shipped {shipped}",
                                  f"{sku.code} 实收数量应在 0 到 {shipped} 之间，请重新签收。")
        counts[line.sku_id] = got
    short = [Discrepancy(line.sku_id, line.shipped or 0, counts[line.sku_id])
             for line, _ in lines if counts[line.sku_id] < (line.shipped or 0)]
    await _guarded(session, transfer, ("shipped",), "签收", state="partially_received" if short else "received",
                   received_at=now, received_by=actor.userid)
    for line, _sku in lines:
        line.received = counts[line.sku_id]
        if line.received:
            await book_move(session, store_id=transfer.to_store_id, sku_id=line.sku_id, kind="transfer_in",
                            qty=line.received, at=now, ref=f"transfer:{transfer.id}", actor=actor.userid)
    await session.flush()
    return short


async def mark_step(session: AsyncSession, transfer_id: int, step: str, now: datetime) -> bool:
    """Record that a step fired; False when it had fired already (here or in another process)."""
    insert = insert_for(session)
    stmt = insert(TransferStep).values(transfer_id=transfer_id, step=step, at=now)
    stmt = stmt.on_conflict_do_nothing(index_elements=["transfer_id", "step"])
    return (await session.execute(stmt.returning(TransferStep.id))).scalar_one_or_none() is not None


async def steps_of(session: AsyncSession, transfer_id: int) -> set[str]:
    stmt = select(TransferStep.step).where(TransferStep.transfer_id == transfer_id)
    return set((await session.execute(stmt)).scalars())


async def in_transit(session: AsyncSession, store_id: int, sku_id: int) -> int:
    """Units shipped to the store and not yet received."""
    stmt = (
        select(func.coalesce(func.sum(TransferLine.shipped), 0))
        .join(Transfer, Transfer.id == TransferLine.transfer_id)
        .where(Transfer.to_store_id == store_id, Transfer.state == "shipped", TransferLine.sku_id == sku_id)
    )
    return int((await session.execute(stmt)).scalar_one() or 0)


def _as_utc(value: date | datetime, *, end: bool) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.combine(value + timedelta(days=1) if end else value, time(), tzinfo=UTC)


async def count_emergency_replenishments(
    session: AsyncSession, date_from: date | datetime, date_to: date | datetime
) -> dict[int, int]:
    """Emergency requests per destination store (to_store_id → n). Datetimes are a half-open range; dates
    are inclusive whole UTC days."""
    stmt = (
        select(Transfer.to_store_id, func.count())
        .where(Transfer.emergency, Transfer.created_at >= _as_utc(date_from, end=False),
               Transfer.created_at < _as_utc(date_to, end=True))
        .group_by(Transfer.to_store_id)
    )
    return dict((await session.execute(stmt)).all())


async def as_dict(session: AsyncSession, transfer: Transfer) -> dict[str, object]:
    """The API view: stores by code, lines with requested / shipped / received / in transit, timestamps."""
    source, dest = await session.get(Store, transfer.from_store_id), await session.get(Store, transfer.to_store_id)
    assert source is not None and dest is not None
    lines, total = [], 0
    for line, sku in await lines_of(session, transfer.id):
        moving = (line.shipped or 0) - (line.received or 0) if transfer.state == "shipped" else 0
        missing = (line.shipped or 0) - (line.received or 0) if line.received is not None else 0
        total += moving
        lines.append({"sku": sku.code, "qty": line.qty, "shipped": line.shipped, "received": line.received,
                      "in_transit": moving, "missing": missing})
    stamp = {k: (getattr(transfer, k).isoformat() if getattr(transfer, k) else None) for k in (
        "created_at", "approved_at", "rejected_at", "shipped_at", "received_at", "cancelled_at")}
    actors = {k: getattr(transfer, k) for k in ("approved_by", "rejected_by", "shipped_by", "received_by",
                                                   "cancelled_by")}
    approvals = [{"region_id": a.region_id, "decision": a.decision, "by": a.decided_by}
                 for a in await approvals_of(session, transfer.id)]
    return {
        "id": transfer.id, "from_store": source.code, "to_store": dest.code, "state": transfer.state,
        "requested_by": transfer.requested_by, "urgent": transfer.urgent, "emergency": transfer.emergency,
        "short_at_source": transfer.short_at_source, "reason": transfer.reason, "lines": lines,
        "in_transit": total, "approvals": approvals, **stamp, **actors,
        "reject_reason": transfer.reject_reason,
    }
