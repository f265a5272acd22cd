"""Transfers from chat: request → approval card → approve → ship → receive, refusals, races and discrepancies."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import FakeClock
from bot.deps import Deps
from bot.events import CardClick, Event, TextMessage
from handlers import dispatch
from models.outbox import OutboundMessage
from models.stock import StockMove, get_level
from models.transfer import Transfer, TransferLine, count_emergency_replenishments, in_transit
from tests.factories import Chain


def text(clock: FakeClock, user: str, content: str) -> TextMessage:
    return TextMessage(from_user=user, create_time=clock.now(), agent_id=1000002, content=content,
                       msg_id=uuid.uuid4().hex)


def click(clock: FakeClock, user: str, key: str, code: str | None = None) -> CardClick:
    return CardClick(from_user=user, create_time=clock.now(), agent_id=1000002, key=key, task_id="t",
                     card_type="button_interaction", response_code=code or f"rc-{uuid.uuid4().hex[:8]}")


async def run(deps: Deps, event: Event) -> None:
    async with deps.sessions() as session, session.begin():
        await dispatch(event, deps, session)


async def outbox(sessions: async_sessionmaker[AsyncSession], recipient: str | None = None,
                 channel: str | None = None) -> list[OutboundMessage]:
    async with sessions() as session:
        stmt = select(OutboundMessage).order_by(OutboundMessage.id)
        if recipient:
            stmt = stmt.where(OutboundMessage.recipient == recipient)
        if channel:
            stmt = stmt.where(OutboundMessage.channel == channel)
        return list((await session.execute(stmt)).scalars())


def texts(rows: list[OutboundMessage]) -> list[str]:
    return [str(r.payload["content"]) for r in rows if r.msgtype == "text"]


def cards(rows: list[OutboundMessage]) -> list[dict[str, Any]]:
    return [r.payload for r in rows if r.msgtype == "template_card"]


def keys(card: dict[str, Any]) -> list[str]:
    return [b["key"] for b in card["button_list"]]


async def only_transfer(sessions: async_sessionmaker[AsyncSession]) -> Transfer:
    async with sessions() as session:
        return (await session.execute(select(Transfer))).scalar_one()


async def on_hand(sessions: async_sessionmaker[AsyncSession], chain: Chain, store: str, sku: str) -> int:
    async with sessions() as session:
        level = await get_level(session, chain.stores[store].id, chain.skus[sku].id)
        return level.on_hand if level else 0


async def mark_sent(sessions: async_sessionmaker[AsyncSession], recipient: str, task_prefix: str,
                    code: str, sent_at: Any) -> None:
    """What the outbox worker records after message/send: the time and the card's response_code."""
    async with sessions() as session, session.begin():
        await session.execute(
            update(OutboundMessage)
            .where(OutboundMessage.recipient == recipient, OutboundMessage.card_task_id.startswith(task_prefix))
            .values(state="sent", sent_at=sent_at, response_code=code)
        )


async def approved_and_shipped(deps: Deps, clock: FakeClock, request: str = "调拨 S001 A001 5") -> Transfer:
    await run(deps, text(clock, "s3", request))
    t = await only_transfer(deps.sessions)
    await run(deps, click(clock, "sup1", f"transfer:approve:{t.id}"))
    await run(deps, click(clock, "m1", f"transfer:ship:{t.id}"))
    return await only_transfer(deps.sessions)


async def test_request_approve_ship_receive_moves_stock_at_both_stores(
    deps: Deps, chain: Chain, clock: FakeClock
) -> None:
    await run(deps, text(clock, "s3", "调拨 S001 A001 5 6900000000028 3"))
    t = await only_transfer(deps.sessions)
    assert (t.state, t.requested_by, t.emergency) == ("requested", "s3", False)
    [card] = cards(await outbox(deps.sessions, "sup1"))
    assert keys(card)[:2] == [f"transfer:approve:{t.id}", f"transfer:reject:{t.id}"]
    rows = {r["keyname"]: r["value"] for r in card["horizontal_content_list"]}
    assert rows["A001 农夫山泉 550ml"] == "×5｜S001存20｜S002存20"
    assert "已提交" in texts(await outbox(deps.sessions, "s3"))[0]

    clock.advance(minutes=30)
    await run(deps, click(clock, "sup1", f"transfer:approve:{t.id}", "rc-sup1"))
    assert (await only_transfer(deps.sessions)).state == "approved"
    [upd] = await outbox(deps.sessions, "sup1", "card_update")
    assert upd.payload == {"response_code": "rc-sup1", "button": {"replace_name": "已同意"}}
    assert any("已由郑督导同意" in m for m in texts(await outbox(deps.sessions, "s3")))
    [ship_card] = cards(await outbox(deps.sessions, "m1"))
    assert keys(ship_card) == [f"transfer:ship:{t.id}"]

    await run(deps, click(clock, "m1", f"transfer:ship:{t.id}", "rc-m1"))
    assert (await only_transfer(deps.sessions)).state == "shipped"
    assert await on_hand(deps.sessions, chain, "S001", "A001") == 15
    assert await on_hand(deps.sessions, chain, "S001", "A002") == 17
    async with deps.sessions() as session:
        assert await in_transit(session, chain.stores["S002"].id, chain.skus["A001"].id) == 5
    receive_cards = cards(await outbox(deps.sessions, "m2")) + cards(await outbox(deps.sessions, "s3"))
    assert [keys(c) for c in receive_cards] == [[f"transfer:receive:{t.id}"]] * 2
    await mark_sent(deps.sessions, "s3", f"transfer-{t.id}-receive-", "rc-s3-card", clock.now())

    clock.advance(hours=3)
    await run(deps, click(clock, "m2", f"transfer:receive:{t.id}", "rc-m2"))
    done = await only_transfer(deps.sessions)
    assert (done.state, done.received_by) == ("received", "m2")
    assert await on_hand(deps.sessions, chain, "S002", "A001") == 25
    assert await on_hand(deps.sessions, chain, "S002", "A002") == 23
    async with deps.sessions() as session:
        assert await in_transit(session, chain.stores["S002"].id, chain.skus["A001"].id) == 0
        moves = (await session.execute(
            select(StockMove.kind, StockMove.qty).where(StockMove.ref == f"transfer:{t.id}").order_by(StockMove.id)
        )).all()
    expected = [("transfer_out", -5), ("transfer_out", -3), ("transfer_in", 5), ("transfer_in", 3)]
    assert sorted(tuple(m) for m in moves) == sorted(expected)
    updates = {(r.recipient, r.payload["response_code"], r.payload["button"]["replace_name"])
               for r in await outbox(deps.sessions, channel="card_update")}
    assert updates == {("sup1", "rc-sup1", "已同意"), ("m1", "rc-m1", "已出库"), ("m2", "rc-m2", "已签收"),
                       ("s3", "rc-s3-card", "已签收")}
    assert any("已由静安店(S002)签收" in m for m in texts(await outbox(deps.sessions, "m1")))


async def test_staff_or_other_region_approving_is_refused_and_changes_nothing(
    deps: Deps, chain: Chain, clock: FakeClock
) -> None:
    await run(deps, text(clock, "s3", "调拨 S001 A001 5"))
    t = await only_transfer(deps.sessions)
    await run(deps, click(clock, "s1", f"transfer:approve:{t.id}"))
    await run(deps, click(clock, "sup2", f"transfer:approve:{t.id}"))
    await run(deps, click(clock, "m2", f"transfer:ship:{t.id}"))
    assert (await only_transfer(deps.sessions)).state == "requested"
    assert "只有区域督导或管理员" in texts(await outbox(deps.sessions, "s1"))[-1]
    assert "不归你的区域" in texts(await outbox(deps.sessions, "sup2"))[-1]
    assert "当前待审批" in texts(await outbox(deps.sessions, "m2"))[-1] or "只有调出门店" in texts(
        await outbox(deps.sessions, "m2"))[-1]
    assert await outbox(deps.sessions, channel="card_update") == []
    assert await on_hand(deps.sessions, chain, "S001", "A001") == 20


async def _race_approve_and_reject(deps: Deps, clock: FakeClock) -> None:
    await run(deps, text(clock, "s3", "调拨 S001 A001 5"))
    t = await only_transfer(deps.sessions)
    await asyncio.wait_for(asyncio.gather(
        run(deps, click(clock, "sup1", f"transfer:approve:{t.id}", "rc-a")),
        run(deps, click(clock, "admin", f"transfer:reject:{t.id}", "rc-r")),
        run(deps, click(clock, "sup1", f"transfer:approve:{t.id}", "rc-a2")),  # WeCom delivering the click again
    ), timeout=30)
    final = await only_transfer(deps.sessions)
    assert final.state in {"approved", "rejected"}
    told = texts(await outbox(deps.sessions, "s3"))
    assert sum("同意" in m or "拒绝" in m for m in told[1:]) == 1  # the requester hears one outcome
    ship_cards = cards(await outbox(deps.sessions, "m1"))
    assert len(ship_cards) == (1 if final.state == "approved" else 0)
    losers = [r for r in await outbox(deps.sessions, channel="card_update")
              if r.payload["button"]["replace_name"] not in {"已同意", "已拒绝"}]
    assert len(losers) == 2  # both losing clicks were greyed with the state they found
    assert any("当前" in m for m in texts(await outbox(deps.sessions, "admin")) + texts(
        await outbox(deps.sessions, "sup1")))


async def test_concurrent_approve_and_reject_exactly_one_wins(deps: Deps, chain: Chain, clock: FakeClock) -> None:
    await _race_approve_and_reject(deps, clock)


@pytest.mark.pg
async def test_concurrent_approve_and_reject_exactly_one_wins_on_postgresql(
    deps: Deps, chain: Chain, clock: FakeClock
) -> None:
    assert deps.sessions.kw["bind"].dialect.name == "postgresql"
    await _race_approve_and_reject(deps, clock)


async def test_cross_region_needs_both_supervisors(deps: Deps, chain: Chain, clock: FakeClock) -> None:
    await run(deps, text(clock, "s4", "调拨 S001 A003 2"))
    t = await only_transfer(deps.sessions)
    assert len(cards(await outbox(deps.sessions, "sup1"))) == 1
    assert len(cards(await outbox(deps.sessions, "sup2"))) == 1
    await run(deps, click(clock, "sup1", f"transfer:approve:{t.id}", "rc-1"))
    assert (await only_transfer(deps.sessions)).state == "requested"
    assert "还需冯督导审批" in texts(await outbox(deps.sessions, "s4"))[-1]
    await run(deps, click(clock, "sup1", f"transfer:approve:{t.id}", "rc-1b"))  # same supervisor again
    assert "等待另一区域督导" in texts(await outbox(deps.sessions, "sup1"))[-1]
    await run(deps, click(clock, "sup2", f"transfer:approve:{t.id}", "rc-2"))
    assert (await only_transfer(deps.sessions)).state == "approved"
    assert len(cards(await outbox(deps.sessions, "m1"))) == 1


@pytest.mark.parametrize(("age_hours", "expect_update"), [(73, False), (10, True)])
async def test_other_supervisors_card_updated_only_with_a_fresh_code(
    deps: Deps, chain: Chain, clock: FakeClock, age_hours: int, expect_update: bool
) -> None:
    await run(deps, text(clock, "s4", "调拨 S001 A003 2"))
    t = await only_transfer(deps.sessions)
    await mark_sent(deps.sessions, "sup1", f"transfer-{t.id}-approve-", "rc-stored", clock.now())
    clock.advance(hours=age_hours)
    await run(deps, click(clock, "sup2", f"transfer:reject:{t.id}", "rc-2"))
    assert (await only_transfer(deps.sessions)).state == "rejected"
    updates = [r.payload["response_code"] for r in await outbox(deps.sessions, "sup1", "card_update")]
    assert updates == (["rc-stored"] if expect_update else [])
    settled = [m for m in texts(await outbox(deps.sessions, "sup1")) if "无需再操作" in m]
    assert len(settled) == (0 if expect_update else 1)


async def test_partial_receipt_books_what_arrived_and_alerts_both_managers_and_supervisor(
    deps: Deps, chain: Chain, clock: FakeClock
) -> None:
    t = await approved_and_shipped(deps, clock)
    await run(deps, text(clock, "m2", f"签收 {t.id} 3"))
    done = await only_transfer(deps.sessions)
    assert done.state == "partially_received"
    async with deps.sessions() as session:
        line = (await session.execute(select(TransferLine))).scalar_one()
    assert (line.qty, line.shipped, line.received) == (5, 5, 3)
    assert await on_hand(deps.sessions, chain, "S002", "A001") == 23
    for who in ("m1", "m2", "sup1"):
        assert any("实发 5，实收 3，少 2" in m for m in texts(await outbox(deps.sessions, who))), who
    await run(deps, text(clock, "m2", f"签收 {t.id}"))  # a second receipt changes nothing
    assert await on_hand(deps.sessions, chain, "S002", "A001") == 23
    assert "当前已部分签收" in texts(await outbox(deps.sessions, "m2"))[-1]


async def test_one_quantity_on_a_multi_line_transfer_is_explained(deps: Deps, chain: Chain, clock: FakeClock) -> None:
    t = await approved_and_shipped(deps, clock, "调拨 S001 A001 5 A002 2")
    await run(deps, text(clock, "s3", f"签收 {t.id} 4"))
    assert "逐个写实收数量" in texts(await outbox(deps.sessions, "s3"))[-1]
    assert (await only_transfer(deps.sessions)).state == "shipped"
    await run(deps, text(clock, "s3", f"签收 {t.id} A001 4 A002 9"))
    assert "0 到 2" in texts(await outbox(deps.sessions, "s3"))[-1]
    await run(deps, text(clock, "s3", f"签收 {t.id} A001 4"))
    assert (await only_transfer(deps.sessions)).state == "partially_received"
    assert await on_hand(deps.sessions, chain, "S002", "A002") == 22


@pytest.mark.parametrize(
    ("sender", "command", "expect"),
    [
        ("s3", "调拨 S009 A001 5", "找不到门店 S009"),
        ("s3", "调拨 S002 A001 5", "不能是本店"),
        ("s3", "调拨 S001 ZZZ 5", "找不到商品 ZZZ"),
        ("s3", "调拨 S001 A001 0", "数量 0 不合理"),
        ("s3", "调拨 S001 A001 五", "不是整数"),
        ("s3", "调拨 S001 A001", "调拨写法"),
        ("sup1", "调拨 S001 A001 5", "店长或店员"),
    ],
)
async def test_bad_request_is_explained_and_writes_nothing(
    deps: Deps, chain: Chain, clock: FakeClock, sender: str, command: str, expect: str
) -> None:
    await run(deps, text(clock, sender, command))
    assert expect in texts(await outbox(deps.sessions, sender))[-1]
    async with deps.sessions() as session:
        assert (await session.execute(select(func.count()).select_from(Transfer))).scalar_one() == 0


async def test_emergency_and_short_source_are_flagged(deps: Deps, chain: Chain, clock: FakeClock) -> None:
    await run(deps, text(clock, "s3", "调拨 S001 A001 30"))  # S001 has 20: short, not urgent
    await run(deps, text(clock, "ｓ３".replace("ｓ３", "s3"), "调拨　Ｓ００１　Ａ００２　２　急"))  # full-width, urgent
    async with deps.sessions() as session:
        rows = (await session.execute(select(Transfer).order_by(Transfer.id))).scalars().all()
        assert [(t.short_at_source, t.urgent, t.emergency) for t in rows] == [(True, False, False), (False, True, True)]
        day = clock.now().date()
        assert await count_emergency_replenishments(session, day, day) == {chain.stores["S002"].id: 1}
        assert await count_emergency_replenishments(session, day - timedelta(days=3), day - timedelta(days=1)) == {}
    first_card = cards(await outbox(deps.sessions, "sup1"))[0]
    assert "库存不足" in first_card["sub_title_text"]
    assert "库存不足" in texts(await outbox(deps.sessions, "s3"))[0]


async def test_requester_cancels_and_the_approval_card_is_settled(deps: Deps, chain: Chain, clock: FakeClock) -> None:
    await run(deps, text(clock, "s3", "调拨 S001 A001 5"))
    t = await only_transfer(deps.sessions)
    await run(deps, text(clock, "s1", f"取消调拨 {t.id}"))
    assert (await only_transfer(deps.sessions)).state == "requested"
    await run(deps, text(clock, "s3", f"取消调拨 {t.id}"))
    assert (await only_transfer(deps.sessions)).state == "cancelled"
    assert any("无需再操作" in m for m in texts(await outbox(deps.sessions, "sup1")))
    await run(deps, click(clock, "sup1", f"transfer:approve:{t.id}", "rc-late"))
    assert "当前已取消" in texts(await outbox(deps.sessions, "sup1"))[-1]


async def _race_two_supervisors(deps: Deps, clock: FakeClock) -> None:
    await run(deps, text(clock, "s4", "调拨 S001 A003 2"))
    t = await only_transfer(deps.sessions)
    await asyncio.wait_for(asyncio.gather(
        run(deps, click(clock, "sup1", f"transfer:approve:{t.id}", "rc-1")),
        run(deps, click(clock, "sup2", f"transfer:approve:{t.id}", "rc-2")),
    ), timeout=30)
    final = await only_transfer(deps.sessions)
    assert final.state == "approved"  # neither approval was lost to the other's snapshot
    assert len(cards(await outbox(deps.sessions, "m1"))) == 1


async def test_two_supervisors_approving_at_once_complete_the_approval(
    deps: Deps, chain: Chain, clock: FakeClock
) -> None:
    await _race_two_supervisors(deps, clock)


@pytest.mark.pg
async def test_two_supervisors_approving_at_once_complete_the_approval_on_postgresql(
    deps: Deps, chain: Chain, clock: FakeClock
) -> None:
    await _race_two_supervisors(deps, clock)


async def test_shipping_under_the_safety_line_raises_the_alert_at_once(deps: Deps, chain: Chain,
                                                                      clock: FakeClock) -> None:
    """The source drops from 20 to 4 (safety 5) when it ships: the low-stock alert opens with the shipment, not at
    the next scheduled evaluation."""
    from models.alert import Alert

    await run(deps, text(clock, "s3", "调拨 S001 A001 16"))  # S002 asks S001 for 16
    t = await only_transfer(deps.sessions)
    await run(deps, click(clock, "sup1", f"transfer:approve:{t.id}"))
    async with deps.sessions() as session:
        assert (await session.execute(select(func.count()).select_from(Alert))).scalar_one() == 0
    await run(deps, click(clock, "m1", f"transfer:ship:{t.id}"))
    assert await on_hand(deps.sessions, chain, "S001", "A001") == 4
    async with deps.sessions() as session:
        [alert] = (await session.execute(select(Alert))).scalars()
    assert (alert.kind, alert.store_id, alert.sku_id) == ("low_stock", chain.stores["S001"].id, chain.skus["A001"].id)
