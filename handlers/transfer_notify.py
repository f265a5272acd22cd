"""Who hears about a transfer and how: approval, ship and receive cards, outcome notices, stale-card settling.

Card task ids are `transfer-<id>-<kind>-<userid>[-<n>]`, so every card of one transfer can be found again in the
outbox. A card is updated later only with a response_code younger than WeCom's 72-hour limit; otherwise the
recipient gets a text instead.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.messages import render
from bot.wecom.cards import button_card, card_task_id
from models.org import Staff, Store, admins, region_supervisor, staff_by_userid, store_manager
from models.outbox import OutboundMessage, send_card, send_text, update_card_button
from models.stock import get_level
from models.transfer import Discrepancy, LineRequest, Transfer, approvals_of, create_transfer, lines_of

RESPONSE_CODE_TTL = timedelta(hours=72)


async def stores_of(session: AsyncSession, t: Transfer) -> tuple[Store, Store]:
    source, dest = await session.get(Store, t.from_store_id), await session.get(Store, t.to_store_id)
    assert source is not None and dest is not None
    return source, dest


def label(store: Store) -> str:
    return f"{store.name}({store.code})"


async def summary(session: AsyncSession, t: Transfer, field: str = "qty") -> str:
    """"A001 农夫山泉 550ml ×5、A002 … ×3" with the requested, shipped or received quantities."""
    parts = [f"{sku.code} {sku.name} ×{getattr(line, field) or 0}" for line, sku in await lines_of(session, t.id)]
    return "、".join(parts)


async def pending_approvers(session: AsyncSession, t: Transfer) -> list[Staff]:
    """The supervisors still to decide; a region without a supervisor falls to the admins."""
    people: dict[str, Staff] = {}
    for approval in await approvals_of(session, t.id):
        if approval.decision != "pending":
            continue
        sup = await region_supervisor(session, approval.region_id)
        for person in [sup] if sup else await admins(session):
            people[person.userid] = person
    return list(people.values())


def names(people: list[Staff]) -> str:
    return "、".join(p.name for p in people) or "管理员"


# Reason buttons on an approval card: `transfer:<action>:<id>`; the plain `transfer:reject:<id>` stays.
REJECT_REASONS = {
    "reject_short": "对方库存也不足",
    "reject_many": "数量太多",
    "reject_warehouse": "请改从仓库补",
}


def urgency(levels: list[tuple[str, int, int]]) -> str:
    """How urgent a request is for the store asking, from its (code, on_hand, safety) per line, worst first:
    "缺货" at zero or below, "低于安全线" under it, otherwise "不急"."""
    def rank(level: tuple[str, int, int]) -> tuple[int, int]:
        _code, on_hand, safety = level
        return (0 if on_hand <= 0 else 1 if on_hand < safety else 2, on_hand - safety)

    code, on_hand, safety = min(levels, key=rank)
    word = "缺货" if on_hand <= 0 else "低于安全线" if on_hand < safety else "不急"
    return f"{word}（{code} 存{on_hand}/安全{safety}）"


async def _approval_card(session: AsyncSession, t: Transfer, userid: str, suffix: str) -> dict[str, object]:
    """Who asked (name and store), how urgent (the asking store's stock against its safety line), the goods with
    both stores' stock, and the decision: agree, reject, or reject with a reason the requester is told."""
    source, dest = await stores_of(session, t)
    lines = await lines_of(session, t.id)
    goods: list[tuple[str, str]] = []
    levels: list[tuple[str, int, int]] = []
    for line, sku in lines:
        src, dst = await get_level(session, source.id, sku.id), await get_level(session, dest.id, sku.id)
        levels.append((sku.code, dst.on_hand if dst else 0, dst.safety_stock if dst else 0))
        have = f"{source.code}存{src.on_hand if src else 0}｜{dest.code}存{dst.on_hand if dst else 0}"
        goods.append((f"{sku.code} {sku.name}", f"×{line.qty}｜{have}"))
    asker = await actor_name(session, t.requested_by)
    rows = [("申请人", f"{asker}（{dest.name}）"), ("紧急程度", ("加急·" if t.urgent else "") + urgency(levels)),
            *goods[:4]]
    flags = "调出店库存不足，可能无法足量调出。" if t.short_at_source else ""
    more = f"另有 {len(lines) - 4} 个商品，见调拨单。" if len(lines) > 4 else ""
    return button_card(
        task_id=card_task_id("transfer", t.id, "approve", userid, *([suffix] if suffix else [])),
        title=f"调拨审批 #{t.id}",
        desc=f"{asker}（{label(dest)}）申请从 {label(source)} 调货",
        sub_title=f"{flags}{more}请同意或拒绝；拒绝可点原因，申请人会看到。",
        rows=rows,
        buttons=[("同意", f"transfer:approve:{t.id}", 1), ("拒绝", f"transfer:reject:{t.id}", 2),
                 *((f"拒绝：{why}", f"transfer:{action}:{t.id}", 2) for action, why in REJECT_REASONS.items())],
    )


async def send_approval_cards(
    session: AsyncSession, t: Transfer, now: datetime, *, to: list[Staff] | None = None, suffix: str = ""
) -> list[Staff]:
    """One approval card to each pending approver (or to `to`); idempotent per recipient and suffix."""
    people = await pending_approvers(session, t) if to is None else to
    for person in people:
        card = await _approval_card(session, t, person.userid, suffix)
        await send_card(session, person.userid, card, now=now,
                        dedupe_key=f"transfer:{t.id}:approve-card:{person.userid}:{suffix}")
    return people


async def _ship_view(session: AsyncSession, t: Transfer, source: Store) -> tuple[list[tuple[str, str]], str, bool]:
    """The ship card's goods (rows), its hint (what the button ships, how to ship less) and whether stock is short."""
    lines = await lines_of(session, t.id)
    rows, short = [], []
    for i, (line, sku) in enumerate(lines):
        level = await get_level(session, source.id, sku.id)
        have = max(level.on_hand if level else 0, 0)
        if i < 5:
            rows.append((f"{sku.code} {sku.name}", f"批准×{line.qty}｜本店存{have}"))
        if have < line.qty:
            short.append(f"{sku.code} 只能发 {have}")
    more = f"另有 {len(lines) - 5} 个商品，见调拨单。" if len(lines) > 5 else ""
    example = str(lines[0][0].qty) if len(lines) == 1 else " ".join(f"{sku.code} 数量" for _l, sku in lines[:2])
    hint = (f"库存不足：点「按现有库存出库」只发账上的数量（{'、'.join(short)}）。" if short
            else "点「确认出库」按批准数量发货。")
    return rows, f"{more}{hint}要少发请回复「发货 {t.id} {example}」。", bool(short)


async def send_ship_card(session: AsyncSession, t: Transfer, now: datetime) -> None:
    """The source's manager (or the admins) get a card naming the goods, the quantities and the stock on hand."""
    source, dest = await stores_of(session, t)
    manager = await store_manager(session, source.id)
    people = [manager] if manager else await admins(session)
    rows, hint, short = await _ship_view(session, t, source)
    for person in people:
        card = button_card(
            task_id=card_task_id("transfer", t.id, "ship", person.userid),
            title=f"调拨出库 #{t.id}",
            desc=f"{label(source)} → {label(dest)}：请备货发出，发货后点按钮",
            sub_title=hint,
            rows=rows[:6],
            buttons=[("按现有库存出库" if short else "确认出库", f"transfer:ship:{t.id}", 1)],
        )
        await send_card(session, person.userid, card, now=now, dedupe_key=f"transfer:{t.id}:ship-card:{person.userid}")


async def send_receive_cards(session: AsyncSession, t: Transfer, now: datetime) -> None:
    """The destination's manager and the requester get a receive card and the shipping notice."""
    source, dest = await stores_of(session, t)
    manager = await store_manager(session, dest.id)
    userids = dict.fromkeys([u for u in (manager.userid if manager else None, t.requested_by) if u])
    text = await summary(session, t, "shipped")
    partial = [f"{sku.code} 批准 {line.qty}、实发 {line.shipped or 0}"
               for line, sku in await lines_of(session, t.id) if (line.shipped or 0) < line.qty]
    note = f"部分出库（{'；'.join(partial)}），按实发数量签收。" if partial else ""
    for userid in userids:
        card = button_card(
            task_id=card_task_id("transfer", t.id, "receive", userid),
            title=f"调拨到货签收 #{t.id}",
            desc=f"{label(source)} 已出库，到货核对后点「确认签收」",
            sub_title=f"{text}。{note}数量不符请回复「签收 {t.id} 实收数量」。",
            rows=[("调出 → 调入", f"{source.code} → {dest.code}")],
            buttons=[("确认签收", f"transfer:receive:{t.id}", 1)],
        )
        await send_card(session, userid, card, now=now, dedupe_key=f"transfer:{t.id}:receive-card:{userid}")
        await send_text(session, userid, render("transfer_shipped", id=t.id, source=label(source), summary=text,
                                                partial=partial), now=now,
                        dedupe_key=f"transfer:{t.id}:shipped:{userid}")


async def cards_of(session: AsyncSession, t: Transfer, kind: str) -> dict[str, OutboundMessage]:
    """The newest card of this kind per recipient."""
    prefix = card_task_id("transfer", t.id, kind) + "-"
    stmt = select(OutboundMessage).where(OutboundMessage.card_task_id.startswith(prefix, autoescape=True))
    newest: dict[str, OutboundMessage] = {}
    for row in (await session.execute(stmt.order_by(OutboundMessage.id))).scalars():
        newest[row.recipient] = row
    return newest


def code_usable(row: OutboundMessage, now: datetime) -> bool:
    """A card's stored response_code may update it only inside WeCom's 72-hour window."""
    return bool(row.response_code) and row.sent_at is not None and now - row.sent_at < RESPONSE_CODE_TTL


async def settle_cards(
    session: AsyncSession, t: Transfer, kind: str, outcome: str, button: str, now: datetime, *, skip: set[str],
) -> None:
    """Tell everyone else holding a live card of this kind that it is decided: update it, or text them."""
    for userid, row in (await cards_of(session, t, kind)).items():
        if userid in skip:
            continue
        if code_usable(row, now) and row.response_code:
            await update_card_button(session, userid, row.response_code, button, now=now)
        else:
            await send_text(session, userid, render("transfer_settled", id=t.id, outcome=outcome), now=now,
                            dedupe_key=f"transfer:{t.id}:settled:{kind}:{userid}")


async def tell(session: AsyncSession, userids: list[str], text: str, now: datetime, key: str) -> None:
    for userid in dict.fromkeys(userids):
        await send_text(session, userid, text, now=now, dedupe_key=f"transfer:{key}:{userid}")


async def actor_name(session: AsyncSession, userid: str | None) -> str:
    person = await staff_by_userid(session, userid) if userid else None
    return person.name if person else (userid or "")


async def notify_discrepancy(session: AsyncSession, t: Transfer, short: list[Discrepancy], now: datetime) -> None:
    """A short receipt: both managers and the supervisors of both regions hear about the difference."""
    source, dest = await stores_of(session, t)
    codes = {line.sku_id: sku.code for line, sku in await lines_of(session, t.id)}
    text = render("transfer_discrepancy", id=t.id, source=label(source), dest=label(dest), lines=[
        {"sku": codes[d.sku_id], "shipped": d.shipped, "received": d.received, "diff": d.shipped - d.received}
        for d in short
    ])
    people: list[Staff | None] = [await store_manager(session, source.id), await store_manager(session, dest.id),
                                  await region_supervisor(session, source.region_id),
                                  await region_supervisor(session, dest.region_id)]
    await tell(session, [p.userid for p in people if p], text, now, f"{t.id}:discrepancy")


async def request_transfer(
    session: AsyncSession, requester: Staff, *, from_store: str, to_store: str | None, lines: list[LineRequest],
    now: datetime, urgent: bool = False, reason: str | None = None,
) -> Transfer:
    """Record the request and send the approval cards: the one path for chat and the API."""
    t = await create_transfer(session, requester=requester, from_store=from_store, to_store=to_store,
                                 lines=lines, now=now, urgent=urgent, reason=reason)
    approvers = await send_approval_cards(session, t, now)
    source, _dest = await stores_of(session, t)
    await tell(session, [requester.userid], render(
        "transfer_requested", id=t.id, source=label(source), summary=await summary(session, t),
        urgent=t.urgent, short=t.short_at_source, approvers=names(approvers),
    ), now, f"{t.id}:requested")
    return t
