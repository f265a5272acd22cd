"""Through the real edge and the sandbox (which refuses bodies over 2,048 bytes with 45002): every input is answered."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.keys import DEPS
from models.outbox import send_markdown, send_text
from tests.factories import Chain
from tests.fixtures_sandbox import Harness

# Text WeCom can carry in a callback's XML: no control characters but tab and newline, no lone surrogates.
XML_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc"), whitelist_characters="\t\n"),
                   max_size=40)
COMMANDS = st.sampled_from(["盘点 ", "库存 ", "调拨 S002 ", "签收 ", "count ", ""])


async def _answered(h: Harness, user: str, content: str) -> str:
    before = len(h.texts_for(user))
    await h.say(user, content)
    new = h.texts_for(user)[before:]
    assert len(new) == 1, new
    h.clock.advance(minutes=5)  # out of every per-minute budget and duplicate window
    return new[0]


async def test_reply_to_a_three_thousand_character_input_is_delivered(harness: Harness, chain: Chain) -> None:
    reply = await _answered(harness, "s1", "库存 " + "可" * 3000)
    assert reply.startswith("找不到商品 可可可") and len(reply.encode()) <= 2048
    reply = await _answered(harness, "s1", "盘点 " + " ".join(f"A00{i % 5 + 1} 1" for i in range(1500)))
    assert "最多盘点 10 个" in reply


@pytest.mark.parametrize(("content", "says"), [
    ("签收 6900000000011", "像是商品条码"),
    ("签收 99999999999999999999", "不是有效的调拨单号"),
    ("盘点 A001 " + "7" * 5000, "数量"),
    ("调拨 S002 A001 ፩", "不是整数"),
    ("签收 ²", "不是有效的调拨单号"),
])
async def test_issue_10_inputs_get_a_plain_answer_on_the_phone(harness: Harness, chain: Chain, content: str,
                                                               says: str) -> None:
    assert says in await _answered(harness, "s1", content)


@settings(max_examples=12, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(prefix=COMMANDS, body=XML_TEXT)
async def test_any_callback_text_gets_one_delivered_reply(harness: Harness, chain: Chain, prefix: str,
                                                          body: str) -> None:
    await _answered(harness, "s2", prefix + body)


async def test_overlong_text_is_cut_at_a_character_boundary_and_delivered(harness: Harness, chain: Chain) -> None:
    deps = harness.app[DEPS]
    async with deps.sessions() as session, session.begin():
        await send_text(session, "s1", "库" * 3000, now=harness.clock.now())
        await send_markdown(session, "s1", "**存**" * 1000, now=harness.clock.now())
    await harness.settle()
    text, markdown = harness.texts_for("s1")
    assert text.endswith("库…") and len(text.encode()) == 2048 - 2  # 681 whole characters and the ellipsis
    assert markdown.endswith("…") and len(markdown.encode()) <= 2048


async def test_stock_by_a_name_part_is_one_tap_on_the_phone(harness: Harness, chain: Chain) -> None:
    await harness.say("s1", "库存 ml")
    [card] = harness.sandbox.cards_for("s1")
    assert [text for text, _ in card.buttons] == ["A001 农夫山泉 550ml", "A002 可口可乐 330ml"]
    await harness.tap("s1", f"stock:level:{chain.skus['A002'].id}")
    assert harness.texts_for("s1")[-1].startswith("徐汇店 A002 可口可乐 330ml：现有 20")
    assert harness.sandbox.cards_for("s1")[0].replace_name == "已选 A002"
