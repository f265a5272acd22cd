"""Shipping never takes the source negative: the ship card names the goods and the stock, ships what is there,
and `发货` ships less than approved; the destination receives what was shipped. Through the real app and sandbox."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models.stock import book_move
from tests.conftest import auth
from tests.factories import Chain
from tests.fixtures_sandbox import Harness
from tests.transfers.test_transfer_sandbox import stock, tap


async def view(h: Harness, ident: int = 1) -> Any:
    return await (await h.client.get(f"/api/transfers/{ident}", headers=auth())).json()


async def approved(h: Harness, request: str) -> None:
    await h.say("s1", request)  # S001 asks S002; both in R1, so sup1 alone approves
    await tap(h, "sup1", "transfer:approve:1")


async def test_shipping_more_than_the_source_has_never_takes_it_negative(harness: Harness, chain: Chain) -> None:
    h = harness
    await approved(h, "调拨 S002 A001 500")
    [card] = h.sandbox.cards_for("m2")
    rows = {r["keyname"]: r["value"] for r in card.card["horizontal_content_list"]}
    assert rows[f"A001 {chain.skus['A001'].name}"] == "批准×500｜本店存20"
    assert [t for t, _ in card.buttons] == ["按现有库存出库"]
    assert "A001 只能发 20" in card.card["sub_title_text"] and "发货 1 500" in card.card["sub_title_text"]
    await tap(h, "m2", "transfer:ship:1")
    assert await stock(h, "S002") == 0  # not -480
    assert h.sandbox.cards_for("m2")[0].replace_name == "部分出库"
    assert "×20（批准 500，账上只有 20）" in h.texts_for("m2")[-1]
    assert any("部分出库：A001 批准 500、实发 20" in t for t in h.texts_for("s1"))
    v = await view(h)
    assert (v["state"], v["lines"][0]["qty"], v["lines"][0]["shipped"], v["in_transit"]) == ("shipped", 500, 20, 20)
    await tap(h, "m1", "transfer:receive:1")
    assert await stock(h, "S001") == 40
    v = await view(h)
    assert (v["state"], v["lines"][0]["received"], v["lines"][0]["missing"]) == ("received", 20, 0)


async def test_partial_shipment_by_command_is_what_the_destination_receives(harness: Harness, chain: Chain) -> None:
    h = harness
    await approved(h, "调拨 S002 A001 10 A002 5")
    await h.say("m2", "发货 1 A001 4 A002 0")
    assert "A001" in h.texts_for("m2")[-1] and "×4（批准 10）" in h.texts_for("m2")[-1]
    assert h.sandbox.cards_for("m2")[0].replace_name == "部分出库"  # the ship card cannot ship a second time
    assert (await stock(h, "S002"), await stock(h, "S002", "A002")) == (16, 20)
    await h.say("s1", "签收 1")
    assert (await stock(h, "S001"), await stock(h, "S001", "A002")) == (24, 20)
    v = await view(h)
    assert v["state"] == "received"
    assert [(ln["sku"], ln["qty"], ln["shipped"], ln["received"]) for ln in v["lines"]] == [
        ("A001", 10, 4, 4), ("A002", 5, 0, 0)]


async def test_one_line_transfer_ships_a_single_typed_quantity(harness: Harness, chain: Chain) -> None:
    h = harness
    await approved(h, "调拨 S002 A003 8")
    await h.say("m2", "发货 1 3")
    assert await stock(h, "S002", "A003") == 17
    assert (await view(h))["lines"][0]["shipped"] == 3


async def test_shipping_more_than_the_books_or_than_approved_is_refused(harness: Harness, chain: Chain) -> None:
    h = harness
    await approved(h, "调拨 S002 A001 500")
    await h.say("m2", "发货 1 100")
    assert "账上只有 20，不能发 100" in h.texts_for("m2")[-1] and "盘点 A001" in h.texts_for("m2")[-1]
    await h.say("m2", "发货 1 501")
    assert "最多发 500" in h.texts_for("m2")[-1]
    await h.say("m2", "发货 1 " + "9" * 5000)
    assert "发货数量" in h.texts_for("m2")[-1] and len(h.texts_for("m2")[-1]) < 100
    assert (await view(h))["state"] == "approved" and await stock(h, "S002") == 20


async def test_nothing_on_hand_ships_nothing_and_the_card_stays(
    harness: Harness, chain: Chain, sessions: async_sessionmaker[AsyncSession]
) -> None:
    h = harness
    async with sessions() as s, s.begin():
        await book_move(s, store_id=chain.stores["S002"].id, sku_id=chain.skus["A001"].id, kind="damage", qty=-20,
                        at=h.clock.now(), ref="damage:all")
    await approved(h, "调拨 S002 A001 5")
    await tap(h, "m2", "transfer:ship:1")
    assert "账上都没有货，无法出库" in h.texts_for("m2")[-1]
    assert (await view(h))["state"] == "approved" and await stock(h, "S002") == 0
    assert h.sandbox.cards_for("m2")[0].buttons  # still there for when the stock is found


async def test_full_stock_ships_as_approved(harness: Harness, chain: Chain) -> None:
    h = harness
    await approved(h, "调拨 S002 A001 5")
    [card] = h.sandbox.cards_for("m2")
    assert [t for t, _ in card.buttons] == ["确认出库"]
    await tap(h, "m2", "transfer:ship:1")
    assert await stock(h, "S002") == 15
    assert h.sandbox.cards_for("m2")[0].replace_name == "已出库"
    assert not any("部分出库" in t for t in h.texts_for("s1"))


async def test_short_receipt_tells_the_clerk_what_was_recorded_not_nothing_to_do(
    harness: Harness, chain: Chain
) -> None:
    h = harness
    await approved(h, "调拨 S002 A001 5 A002 3")
    await tap(h, "m2", "transfer:ship:1")
    await h.say("s1", "签收 1 A001 4 A002 3")
    reply = h.texts_for("s1")[-1]
    assert "已按实收入账" in reply and "A001 实发 5、实收 4" in reply and "无需再操作" not in reply
    assert any("实发 5，实收 4，少 1" in t for t in h.texts_for("m2"))
    assert await stock(h, "S001") == 24
