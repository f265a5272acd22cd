"""Property tests: any text, any card key and any callback content gets exactly one plain answer, never an error."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.deps import Deps
from bot.errors import InvalidInput, InvalidQuantity
from bot.events import ScanCode
from handlers.parse import DB_ID_MAX, is_unit, items, looks_like_qty, parse_id, parse_qty, words
from models.outbox import CONTENT_MAX_BYTES
from tests.factories import Chain
from tests.input_support import WHEN, answers_to, click, replies, text, texts_to

# Fast and deterministic: the same examples every run, no deadline (a loaded 2-core machine), no example database.
PROPS = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

COMMANDS = ["盘点", "count", "库存", "stock", "调拨", "transfer", "签收", "receive", "取消调拨", "交图", "任务", "积分",
            "帮助", "help", ""]
TRICKY = ["A001", "a005", "S002", "静安店", "6900000000011", "99999999999999999999", "²", "፩", "47个", "3 盒", "-3",
          "4.5", "五", "可口可乐", "乐", "ml", "%", "_", "#1", "1号", "0", "１２", "急", "！", "\x00", "\u200b", "🙂",
          "9" * 400, "乐" * 700]
WORD = st.one_of(st.sampled_from(TRICKY), st.text(max_size=10),
                 st.integers(min_value=-(10**25), max_value=10**25).map(str))
SEP = st.sampled_from([" ", "，", ",", ":", "：", "、", "\n", "\u3000", ""])
MESSAGE = st.one_of(
    st.builds(lambda c, sep, ws: c + sep + sep.join(ws), st.sampled_from(COMMANDS), SEP, st.lists(WORD, max_size=6)),
    st.text(max_size=60),
)
USERS = st.sampled_from(["s1", "m1", "sup1", "admin", "s4"])
KEY_PART = st.one_of(st.sampled_from(["transfer", "task", "count", "alert", "approve", "reject", "ship", "receive",
                                      "done", "how", "ack", "ackall", "snooze", "1", "²", "99999999999999999999",
                                      "-1", ""]), st.text(max_size=8))
KEY = st.one_of(st.builds(lambda a, b, c: f"{a}:{b}:{c}", KEY_PART, KEY_PART, KEY_PART), st.text(max_size=30))


@PROPS
@given(user=USERS, content=MESSAGE)
async def test_any_text_gets_exactly_one_reply_that_fits(deps: Deps, chain: Chain, user: str, content: str) -> None:
    rows = await replies(deps, text(user, content))
    [reply] = answers_to(rows, user)
    assert reply.msgtype == "template_card" or 0 < len(reply.payload["content"].encode()) <= CONTENT_MAX_BYTES


@PROPS
@given(user=USERS, key=KEY)
async def test_any_card_key_gets_an_answer(deps: Deps, chain: Chain, user: str, key: str) -> None:
    rows = await replies(deps, click(user, key))
    assert len(texts_to(rows, user)) == 1


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(args=st.lists(WORD, max_size=8))
def test_items_keep_every_word_in_order(args: list[str]) -> None:
    """Pairing loses no word but a unit standing after a quantity, and reorders none."""
    clean = [w for a in args for w in words(a)]
    got = items(clean)
    flat = [w for it in got for w in [*it.sku.split(" "), *([it.qty] if it.qty else [])]]
    rest = iter(clean)
    assert all(any(word == other for other in rest) for word in flat)  # a subsequence: nothing reordered
    dropped = list(clean)
    for word in flat:
        dropped.remove(word)
    assert all(is_unit(w) for w in dropped)
    assert all(it.qty is None or looks_like_qty(it.qty) for it in got)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(word=WORD)
def test_parse_qty_is_a_bounded_int_or_a_plain_refusal(word: str) -> None:
    try:
        qty = parse_qty(word, 99999)
    except InvalidQuantity as err:
        assert "数量" in err.user_message and len(err.user_message) < 80
    else:
        assert 0 <= qty <= 99999


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(word=WORD)
def test_parse_id_is_an_int4_or_a_plain_refusal(word: str) -> None:
    try:
        ident = parse_id(word, what="调拨单号", usage="签收写法：签收 12")
    except InvalidInput as err:
        assert "调拨单号" in err.user_message and len(err.user_message) < 120
    else:
        assert 1 <= ident <= DB_ID_MAX


@PROPS
@given(user=USERS, key=st.sampled_from(["scan_in", "scan_out", "scan_count"]),
       result=st.one_of(st.sampled_from(["EAN_13,6900000000011", "6900000000028", "EAN_13,", ",,,", "A001"]),
                        st.text(max_size=3000)),
       then=MESSAGE)
async def test_any_scan_and_the_number_after_it_get_one_reply_each(deps: Deps, chain: Chain, user: str, key: str,
                                                                   result: str, then: str) -> None:
    scan = ScanCode(from_user=user, create_time=WHEN, agent_id=1, key=key, scan_type="barcode", scan_result=result,
                    wait_msg=True)
    assert len(answers_to(await replies(deps, scan, keep=True), user)) == 1
    assert len(answers_to(await replies(deps, text(user, then)), user)) == 1
