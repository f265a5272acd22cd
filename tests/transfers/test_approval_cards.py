"""Approval cards as supervisors see them: who asked and how urgent, reject reasons the requester hears, and the
supervisor whose decision was overruled or preempted told by whom; double taps and two supervisors stay one."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.clock import FakeClock
from bot.deps import Deps
from handlers.transfer_notify import urgency
from models.alert import Alert
from models.transfer import Transfer
from tests.alerts.test_alert_digest import pos_sale
from tests.conftest import auth
from tests.factories import Chain
from tests.fixtures_sandbox import Harness
from tests.input_support import click, replies
from tests.transfers.test_transfer import click as click_at
from tests.transfers.test_transfer import only_transfer, outbox, run, texts
from tests.transfers.test_transfer import text as text_at

REASON_BUTTONS = [("拒绝：对方库存也不足", "transfer:reject_short:1"), ("拒绝：数量太多", "transfer:reject_many:1"),
                  ("拒绝：请改从仓库补", "transfer:reject_warehouse:1")]


async def tap(h: Harness, userid: str, key: str) -> None:
    h.clock.advance(minutes=1)
    await h.tap(userid, key)


async def transfer_view(h: Harness) -> dict[str, object]:
    r = await h.client.get("/api/transfers/1", headers=auth())
    assert r.status == 200
    return dict(await r.json())


async def test_the_card_says_who_asked_and_that_the_store_is_out_of_stock(harness: Harness, chain: Chain) -> None:
    h = harness
    await pos_sale(h, "POS-S002", [("A001", 20)], store="S002")  # 静安店 sold its last A001
    await h.say("s3", "调拨 S001 A001 5")
    [card] = h.sandbox.cards_for("sup1")
    assert card.card["main_title"] == {"title": "调拨审批 #1", "desc": "钱多多（静安店(S002)）申请从 徐汇店(S001) 调货"}
    assert [(r["keyname"], r["value"]) for r in card.card["horizontal_content_list"]] == [
        ("申请人", "钱多多（静安店）"), ("紧急程度", "缺货（A001 存0/安全5）"),
        ("A001 农夫山泉 550ml", "×5｜S001存20｜S002存0")]
    assert card.buttons == [("同意", "transfer:approve:1"), ("拒绝", "transfer:reject:1"), *REASON_BUTTONS]
    assert card.card["sub_title_text"] == "请同意或拒绝；拒绝可点原因，申请人会看到。"


def test_urgency_names_the_worst_line() -> None:
    assert urgency([("A001", 20, 5), ("A002", 3, 5)]) == "低于安全线（A002 存3/安全5）"
    assert urgency([("A001", 2, 5), ("A002", -1, 5)]) == "缺货（A002 存-1/安全5）"
    assert urgency([("A001", 20, 5)]) == "不急（A001 存20/安全5）"


async def test_reject_with_a_reason_tells_the_requester_why_and_a_double_tap_is_one_decision(
    harness: Harness, chain: Chain
) -> None:
    h = harness
    await h.say("s3", "调拨 S001 A001 5")
    card = h.sandbox.find_card("sup1", "transfer:reject_many:1")
    h.clock.advance(minutes=1)
    await h.sandbox.user_click("sup1", "transfer:reject_many:1", card=card)
    await h.sandbox.user_click("sup1", "transfer:reject_many:1", card=card)  # the second tap of a double tap
    await h.settle()
    view = await transfer_view(h)
    assert (view["state"], view["rejected_by"], view["reject_reason"]) == ("rejected", "sup1", "数量太多")
    rejections = [t for t in h.texts_for("s3") if "拒绝" in t]
    assert rejections == ["调拨单 1 被郑督导拒绝，原因：数量太多。请减少数量后重新发「调拨」。"]
    assert h.texts_for("sup1") == ["调拨单 1 当前已拒绝，不能再拒绝。"]  # their own decision: nobody else's
    assert card.replace_name == "已拒绝"


@pytest.mark.parametrize(("key", "told"), [
    ("transfer:reject_short:1", "调拨单 1 被郑督导拒绝，原因：对方库存也不足。可以换一家库存多的门店再发「调拨」。"),
    ("transfer:reject_warehouse:1", "调拨单 1 被郑督导拒绝，原因：请改从仓库补。请向仓库下补货单，不用再发调拨。"),
    ("transfer:reject:1", "调拨单 1 被郑督导拒绝。如仍需要，请联系督导后重新发起「调拨」。"),
])
async def test_each_reason_says_what_to_do_instead(harness: Harness, chain: Chain, key: str, told: str) -> None:
    h = harness
    await h.say("s3", "调拨 S001 A001 5")
    await tap(h, "sup1", key)
    assert h.texts_for("s3")[-1] == told


async def test_cross_region_the_overruled_supervisor_is_told_by_whom(harness: Harness, chain: Chain) -> None:
    h = harness
    await h.say("s3", "调拨 S003 A001 5")  # 静安店 (华东) asks 天河店 (华南): both supervisors decide
    await tap(h, "sup1", "transfer:approve:1")
    assert h.sandbox.cards_for("sup1")[0].replace_name == "已同意，待另一督导"
    await tap(h, "sup2", "transfer:reject_short:1")
    view = await transfer_view(h)
    assert (view["state"], view["rejected_by"], view["reject_reason"]) == ("rejected", "sup2", "对方库存也不足")
    assert h.texts_for("sup1")[-1] == "已由冯督导处理：调拨单 1 已拒绝（对方库存也不足），你的同意不再生效，无需操作。"
    assert h.texts_for("s3")[-1] == "调拨单 1 被冯督导拒绝，原因：对方库存也不足。可以换一家库存多的门店再发「调拨」。"


async def test_a_supervisor_tapping_after_the_other_decided_is_told_by_whom(harness: Harness, chain: Chain) -> None:
    h = harness
    await h.say("s3", "调拨 S003 A001 5")
    stale = dataclasses.replace(h.sandbox.find_card("sup1", "transfer:approve:1"), updates=[])
    await tap(h, "sup2", "transfer:reject_many:1")
    assert h.sandbox.cards_for("sup1")[0].replace_name == "已拒绝"  # settled with the code from message/send
    h.clock.advance(minutes=1)
    await h.sandbox.user_click("sup1", "transfer:approve:1", card=stale)  # an old copy of the card
    await h.settle()
    assert h.texts_for("sup1")[-1] == "已由冯督导处理：调拨单 1 当前已拒绝（数量太多），你的操作未生效，无需再点。"
    assert (await transfer_view(h))["state"] == "rejected"


async def test_two_supervisors_tapping_at_once_make_one_decision(harness: Harness, chain: Chain) -> None:
    h = harness
    await h.say("s3", "调拨 S003 A001 5")
    first = h.sandbox.find_card("sup1", "transfer:reject:1")
    second = h.sandbox.find_card("sup2", "transfer:reject_warehouse:1")
    h.clock.advance(minutes=1)
    await h.sandbox.user_click("sup1", "transfer:reject:1", card=first)
    await h.sandbox.user_click("sup2", "transfer:reject_warehouse:1", card=second)
    await h.settle()
    view = await transfer_view(h)
    assert (view["state"], view["rejected_by"], view["reject_reason"]) == ("rejected", "sup1", None)
    assert [t for t in h.texts_for("s3") if "拒绝" in t] == [
        "调拨单 1 被郑督导拒绝。如仍需要，请联系督导后重新发起「调拨」。"]
    assert h.texts_for("sup2")[-1] == "已由郑督导处理：调拨单 1 当前已拒绝，你的操作未生效，无需再点。"


async def _race_two_supervisors(deps: Deps) -> None:
    clock = deps.clock
    assert isinstance(clock, FakeClock)
    await run(deps, text_at(clock, "s3", "调拨 S003 A001 5"))
    t = await only_transfer(deps.sessions)
    await asyncio.wait_for(asyncio.gather(
        run(deps, click_at(clock, "sup1", f"transfer:approve:{t.id}", "rc-1")),
        run(deps, click_at(clock, "sup2", f"transfer:reject_many:{t.id}", "rc-2")),
        run(deps, click_at(clock, "sup2", f"transfer:reject_many:{t.id}", "rc-3")),  # and a double tap
    ), timeout=30)
    final = await only_transfer(deps.sessions)
    assert (final.state, final.rejected_by, final.reject_reason) == ("rejected", "sup2", "数量太多")
    told = texts(await outbox(deps.sessions, "s3"))
    assert sum("拒绝" in m for m in told) == 1
    assert sum("已由冯督导处理" in m for m in texts(await outbox(deps.sessions, "sup1"))) == 1


async def test_approve_and_reject_with_reason_at_once_are_one_decision(deps: Deps, chain: Chain) -> None:
    await _race_two_supervisors(deps)


@pytest.mark.pg
async def test_approve_and_reject_with_reason_at_once_are_one_decision_on_postgresql(
    deps: Deps, chain: Chain
) -> None:
    assert deps.sessions.kw["bind"].dialect.name == "postgresql"
    await _race_two_supervisors(deps)


PROPS = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
ACTIONS = st.one_of(st.sampled_from(["reject_short", "reject_many", "reject_warehouse", "reject", "approve",
                                     "transfer", "restocked", "recount", "snooze", "snoozeall", "ack", "ackall",
                                     "reject_", "Reject_many"]), st.text(max_size=12))
IDENTS = st.one_of(st.sampled_from(["1", "2", "0", "-1", "²", "99999999999999999999", ""]), st.text(max_size=8))


@PROPS
@given(user=st.sampled_from(["s1", "s3", "m1", "sup1", "sup2", "admin"]), kind=st.sampled_from(["alert", "transfer"]),
       action=ACTIONS, ident=IDENTS)
async def test_any_alert_or_transfer_key_gets_an_answer(
    deps: Deps, chain: Chain, user: str, kind: str, action: str, ident: str
) -> None:
    """With an open transfer and alerts of every kind in the database, any key is answered: a text, or the
    tapped card updated; never an exception, never silence."""
    if not await _seeded(deps):
        assert isinstance(deps.clock, FakeClock)
        await run(deps, text_at(deps.clock, "s3", "调拨 S003 A001 5"))
        async with deps.sessions() as s, s.begin():
            for i, kind_name in enumerate(("low_stock", "negative_stock", "no_movement")):
                s.add(Alert(store_id=chain.stores["S001"].id, sku_id=chain.skus[f"A00{i + 1}"].id, kind=kind_name,
                            level="warning", state="open", open_key=1, on_hand=-1, safety_stock=5,
                            created_at=datetime(2026, 11, 24, tzinfo=UTC), esc_step=0))
    rows = await replies(deps, click(user, f"{kind}:{action}:{ident}"))
    said = [r for r in rows if r.recipient == user and (r.msgtype == "text" or r.channel == "card_update")]
    assert said, f"{user} tapping {kind}:{action}:{ident!r} heard nothing"


async def _seeded(deps: Deps) -> bool:
    async with deps.sessions() as s:
        return await s.get(Transfer, 1) is not None
