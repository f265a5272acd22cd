"""Callback XML → flat dict → typed events, from real payload files; plus the kit other callback tests use."""

from __future__ import annotations

import itertools
import secrets
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.errors import MalformedCallback
from bot.events import (
    CardClick,
    EnterAgent,
    ImageMessage,
    LocationMessage,
    LocationReport,
    MenuClick,
    OtherEvent,
    ScanCode,
    SelectedItem,
    TextMessage,
)
from bot.wecom.crypto import CallbackCrypto
from bot.wecom.parse import dedupe_key, message_dict, to_event
from tests import TESTS
from tests.conftest import TEST_AES_KEY, TEST_CORP_ID, TEST_TOKEN

PAYLOADS = TESTS / "payloads"
_msg_ids = itertools.count(7_000_000_000_000_000_001)


def load_payload(name: str, **fields: Any) -> str:
    """tests/payloads/<name>.xml with {user}, {time}, {msgid}, {content}, {corp} filled in."""
    values: dict[str, Any] = {"user": "s1", "time": 1_795_000_000, "msgid": next(_msg_ids), "content": "帮助",
                              "corp": TEST_CORP_ID}
    values.update(fields)
    return (PAYLOADS / f"{name}.xml").read_text(encoding="utf-8").format(**values)


def kit_crypto() -> CallbackCrypto:
    """The crypto of the test app's WeCom settings (tests/conftest.py)."""
    return CallbackCrypto(TEST_TOKEN, TEST_AES_KEY, TEST_CORP_ID)


def envelope(xml: str, timestamp: int, *, crypto: CallbackCrypto | None = None) -> tuple[dict[str, str], bytes]:
    """What WeCom POSTs for a message: (query params, encrypted XML body), signed."""
    nonce = secrets.token_hex(5)
    body = (crypto or kit_crypto()).encrypt(xml, nonce, timestamp)
    sig = body.split("<MsgSignature><![CDATA[", 1)[1].split("]]>", 1)[0]
    return {"msg_signature": sig, "timestamp": str(timestamp), "nonce": nonce}, body.encode()


def parsed(name: str, **fields: Any) -> Any:
    return to_event(message_dict(load_payload(name, **fields)))


T = 1_795_000_000
WHEN = datetime.fromtimestamp(T, UTC)


def test_text_message_parses_with_its_msg_id() -> None:
    ev = parsed("text", content="盘点 A001 7", msgid=123)
    assert ev == TextMessage(from_user="s1", create_time=WHEN, agent_id=1000002, content="盘点 A001 7", msg_id="123")


def test_image_message_keeps_media_id_and_pic_url() -> None:
    ev = parsed("image", msgid=5)
    assert isinstance(ev, ImageMessage)
    assert (ev.media_id, ev.pic_url, ev.msg_id) == ("media-abc-123", "http://wework.qpic.cn/wwpic/photo-1.jpg", "5")


def test_location_message_maps_x_to_latitude() -> None:
    ev = parsed("location")
    assert isinstance(ev, LocationMessage)
    assert (ev.latitude, ev.longitude, ev.scale, ev.label) == (31.19, 121.43, 15, "上海市徐汇区漕溪北路")


def test_location_event_becomes_location_report() -> None:
    ev = parsed("location_event")
    assert ev == LocationReport(from_user="s1", create_time=WHEN, agent_id=1000002, latitude=31.19,
                                longitude=121.43, precision=30.0)


def test_enter_agent_click_and_view() -> None:
    assert isinstance(parsed("enter_agent"), EnterAgent)
    assert parsed("click") == MenuClick(from_user="s1", create_time=WHEN, agent_id=1000002, key="my_tasks")
    assert parsed("view").key == "http://127.0.0.1:8080/dashboard"


def test_scancode_waitmsg_and_push() -> None:
    wait = parsed("scancode_waitmsg")
    assert wait == ScanCode(from_user="s1", create_time=WHEN, agent_id=1000002, key="scan_in", scan_type="barcode",
                            scan_result="EAN_13,6900000000011", wait_msg=True)
    push = parsed("scancode_push")
    assert isinstance(push, ScanCode) and not push.wait_msg and push.scan_result == "6900000000028"


def test_template_card_event_with_one_selected_item_gives_lists() -> None:
    ev = parsed("template_card_event", user="sup1")
    assert isinstance(ev, CardClick)
    assert ev.parts == ("transfer", "approve", "17")
    assert (ev.task_id, ev.card_type, ev.response_code) == ("transfer-17-v1", "button_interaction",
                                                            "rc-ResponseCode-0001")
    assert ev.selected == (SelectedItem("reason", ("stock_low",)),)


def test_template_card_event_with_several_items_and_options() -> None:
    ev = parsed("template_card_event_multi")
    assert isinstance(ev, CardClick)
    assert ev.selected == (SelectedItem("q1", ("a", "b")), SelectedItem("q2", ("c",)))


def test_pic_list_single_item_is_a_list_and_unknown_event_is_kept() -> None:
    d = message_dict(load_payload("pic_sysphoto"))
    assert d["SendPicsInfo"]["PicList"]["item"] == [{"PicMd5Sum": "1b5f7c23b5bf75682a53e7b6d163e185"}]
    ev = to_event(d)
    assert isinstance(ev, OtherEvent) and ev.event == "pic_sysphoto" and ev.raw == d


def test_voice_is_other_event_with_msg_type() -> None:
    ev = parsed("voice")
    assert isinstance(ev, OtherEvent) and (ev.msg_type, ev.event) == ("voice", None)


def test_dedupe_keys_for_messages_and_events() -> None:
    assert dedupe_key(message_dict(load_payload("text", msgid=42))) == "msg:42"
    enter = dedupe_key(message_dict(load_payload("enter_agent", user="m1", time=T)))
    assert enter.startswith(f"evt:m1:{T}:enter_agent:") and len(enter) <= 191
    assert enter == dedupe_key(message_dict(load_payload("enter_agent", user="m1", time=T)))  # a retry: same key
    # Two different events from one user in the same second stay apart.
    location = dedupe_key(message_dict(load_payload("location_event", user="m1", time=T)))
    assert location.startswith(f"evt:m1:{T}:LOCATION:")


@pytest.mark.parametrize(
    ("xml", "reason"),
    [
        ("<xml><FromUserName>s1</FromUserName>", "not well-formed"),
        ("<xml><CreateTime>1</CreateTime><MsgType>text</MsgType></xml>", "missing FromUserName"),
        ("<xml><FromUserName>s1</FromUserName><CreateTime>soon</CreateTime><MsgType>text</MsgType></xml>",
         "CreateTime"),
        ('<!DOCTYPE xml [<!ENTITY a "aaaa">]><xml><FromUserName>&a;</FromUserName></xml>', "forbidden"),
    ],
)
def test_malformed_messages_are_refused_with_the_reason(xml: str, reason: str) -> None:
    with pytest.raises(MalformedCallback, match=reason):
        message_dict(xml)


def test_deeply_nested_xml_is_refused_not_crashed() -> None:
    deep = "<a>" * 5000 + "</a>" * 5000
    xml = load_payload("text").replace("<AgentID>", deep + "<AgentID>")
    with pytest.raises(MalformedCallback, match="nested too deeply"):
        message_dict(xml)


def test_bad_location_number_is_refused() -> None:
    xml = load_payload("location").replace("<Location_X>31.19</Location_X>", "<Location_X>north</Location_X>")
    with pytest.raises(MalformedCallback, match="Location_X"):
        to_event(message_dict(xml))
