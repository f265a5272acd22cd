"""Callback XML content, property-tested: any fields parse to an event or a MalformedCallback, and every event a
person sent gets one answer through dispatch."""

from __future__ import annotations

from xml.sax.saxutils import escape

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.deps import Deps
from bot.errors import MalformedCallback
from bot.events import Event, LocationMessage, LocationReport
from bot.wecom.parse import message_dict, to_event
from tests.factories import Chain
from tests.input_support import WHEN, replies, texts_to

PURE = settings(max_examples=300, deadline=None, derandomize=True, database=None)
DISPATCH = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

XML_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc"), whitelist_characters="\t\n"),
                   max_size=30)
NUMBERISH = st.one_of(XML_TEXT, st.sampled_from(["nan", "inf", "-inf", "1e999", "9" * 5000, "²", "31.2", "-0",
                                                 "99999999999", "1700000000"]),
                      st.floats(allow_nan=True, allow_infinity=True).map(repr))
FIELDS = ["ToUserName", "FromUserName", "CreateTime", "MsgType", "Content", "MsgId", "AgentID", "Event", "EventKey",
          "Location_X", "Location_Y", "Scale", "Label", "Latitude", "Longitude", "Precision", "TaskId",
          "CardType", "ResponseCode", "PicUrl", "MediaId"]
MSG_TYPES = st.sampled_from(["text", "image", "location", "event", "voice", "", "x"])
EVENTS = st.sampled_from(["LOCATION", "enter_agent", "click", "scancode_push", "template_card_event", "subscribe",
                          ""])


@st.composite
def callback_xml(draw: st.DrawFn) -> str:
    fields = {"FromUserName": draw(st.one_of(st.just("s1"), XML_TEXT)),
              "CreateTime": draw(st.one_of(st.just("1764000000"), NUMBERISH)),
              "MsgType": draw(MSG_TYPES), "Event": draw(EVENTS)}
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=8)):
        fields[name] = draw(NUMBERISH)
    return "<xml>" + "".join(f"<{k}>{escape(v)}</{k}>" for k, v in fields.items()) + "</xml>"


@PURE
@given(xml=callback_xml())
def test_any_callback_fields_give_an_event_or_a_malformed_callback(xml: str) -> None:
    try:
        event = to_event(message_dict(xml.encode()))
    except MalformedCallback:
        return
    assert isinstance(event, Event)


@DISPATCH
@given(lat=st.floats(allow_nan=True, allow_infinity=True), lng=st.floats(allow_nan=True, allow_infinity=True),
       label=st.text(max_size=400))
async def test_any_shared_location_gets_one_answer(deps: Deps, chain: Chain, lat: float, lng: float,
                                                  label: str) -> None:
    event = LocationMessage(from_user="s1", create_time=WHEN, agent_id=1, latitude=lat, longitude=lng, scale=15,
                            label=label, msg_id="1")
    [reply] = texts_to(await replies(deps, event), "s1")
    assert "位置" in reply


@DISPATCH
@given(lat=st.floats(allow_nan=True, allow_infinity=True), lng=st.floats(allow_nan=True, allow_infinity=True))
async def test_any_reported_location_is_kept_or_dropped_silently(deps: Deps, chain: Chain, lat: float,
                                                                 lng: float) -> None:
    event = LocationReport(from_user="s1", create_time=WHEN, agent_id=1, latitude=lat, longitude=lng, precision=0)
    assert await replies(deps, event) == []
