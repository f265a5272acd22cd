"""The sandbox's model of WeCom's duplicate check: per recipient, on the message content, looking back over the new
request's interval; a swallowed message answers errcode 0 with the earlier msgid and is delivered to nobody."""

from __future__ import annotations

from typing import Any

import pytest

from bot.clock import FakeClock
from bot.sandbox import Sandbox, SandboxConfig
from bot.sandbox.records import ApiError

USERS = {"a": "甲", "b": "乙", "c": "丙"}


def text(to: str, content: str, check: int = 1, interval: int = 600, **extra: Any) -> dict[str, Any]:
    return {"touser": to, "msgtype": "text", "agentid": 1000002, "text": {"content": content},
            "enable_duplicate_check": check, "duplicate_check_interval": interval, **extra}


def make(clock: FakeClock, **config: Any) -> Sandbox:
    return Sandbox(SandboxConfig(users=dict(USERS), **config), clock=clock)


def test_identical_content_to_the_same_user_is_swallowed_whatever_the_other_recipients(clock: FakeClock) -> None:
    sb = make(clock)
    first = sb.send_message(text("a|b", "到货"))
    again = sb.send_message(text("a", "到货", safe=0))  # other recipients and other fields do not matter
    assert again["errcode"] == 0 and again["msgid"] == first["msgid"]
    assert [d.to for d in sb.deliveries] == ["a", "b"]
    assert [(s.to, s.earlier_msgid) for s in sb.suppressed] == [("a", first["msgid"])]
    mixed = sb.send_message(text("b|c", "到货"))  # b had it, c did not: c gets it under a new msgid
    assert mixed["msgid"] != first["msgid"] and [d.to for d in sb.deliveries] == ["a", "b", "c"]
    assert sb.duplicates_suppressed == 2


def test_the_window_is_the_new_requests_interval_looking_back(clock: FakeClock) -> None:
    sb = make(clock)
    sb.send_message(text("a", "补货", interval=1800))
    clock.advance(seconds=61)
    sb.send_message(text("a", "补货", interval=60))  # the earlier one is older than this request looks back
    clock.advance(seconds=30)
    sb.send_message(text("a", "补货", interval=60))  # the second is inside
    assert len(sb.messages_for("a")) == 2 and len(sb.suppressed) == 1


def test_a_send_without_the_check_counts_as_the_earlier_one_unless_configured_otherwise(clock: FakeClock) -> None:
    strict = make(clock)
    strict.send_message(text("a", "盘点提醒", check=0))
    strict.send_message(text("a", "盘点提醒"))
    assert len(strict.messages_for("a")) == 1
    lenient = make(clock, duplicate_counts_unchecked=False)
    lenient.send_message(text("a", "盘点提醒", check=0))
    lenient.send_message(text("a", "盘点提醒"))
    assert len(lenient.messages_for("a")) == 2
    # with the check off nothing is ever swallowed
    strict.send_message(text("a", "盘点提醒", check=0))
    assert len(strict.messages_for("a")) == 2


def test_request_mode_compares_the_whole_request_but_the_recipients(clock: FakeClock) -> None:
    sb = make(clock, duplicate_key="request")
    sb.send_message(text("a", "调拨", safe=0))
    sb.send_message(text("a", "调拨", safe=1))  # differs outside the message body: not identical here
    sb.send_message(text("a|b", "调拨", safe=1))  # same request for a but for the recipients: swallowed for a
    assert len(sb.messages_for("a")) == 2 and len(sb.messages_for("b")) == 1


def test_an_interval_out_of_range_is_refused(clock: FakeClock) -> None:
    sb = make(clock)
    for bad in (-1, 4 * 3600 + 1, "x"):
        with pytest.raises(ApiError) as err:
            sb.send_message(text("a", "x", interval=bad))  # type: ignore[arg-type]
        assert err.value.errcode == 40058
