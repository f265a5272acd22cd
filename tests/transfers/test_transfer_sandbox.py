"""Transfers end to end through the WeCom sandbox: phones type and tap, the real app answers over real HTTP."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest

from bot.clock import FakeClock
from bot.config import Settings
from bot.keys import DEPS
from bot.sandbox import Sandbox
from scheduler.transfer_jobs import check_transfers
from tests.conftest import auth
from tests.factories import Chain
from tests.fixtures_sandbox import Harness


@pytest.fixture
async def harness(
    sandbox: Sandbox, make_client: Callable[..., Awaitable[Any]], make_settings: Callable[..., Settings],
    clock: FakeClock,
) -> Harness:
    """The shared harness, minus the app's background inbox / outbox loops: only settle() moves messages, so a
    loop holding an event (PostgreSQL, SKIP LOCKED) cannot make settle() return before the event is handled."""
    settings = make_settings(wecom={"api_base": sandbox.config.public_url}, inbox={"workers": 0},
                             outbox={"background": False})
    client = await make_client(settings)
    sandbox.config.callback_url = str(client.make_url(settings.wecom.callback_path))
    return Harness(sandbox=sandbox, client=client, app=client.server.app, clock=clock)


async def stock(h: Harness, store: str, sku: str = "A001") -> int:
    r = await h.client.get("/api/stock", params={"store": store, "sku": sku}, headers=auth())
    return int((await r.json())["on_hand"])


async def tap(h: Harness, userid: str, key: str) -> None:
    h.clock.advance(minutes=1)  # WeCom dedupes events by sender + CreateTime: a person taps at most once a second
    outcome = await h.sandbox.user_click(userid, key)
    assert outcome.status == 200
    await h.settle()


async def request_and_ship(h: Harness) -> int:
    await h.sandbox.user_text("s3", "调拨 S001 A001 5")
    await h.settle()
    r = await h.client.get("/api/transfers/1", headers=auth())
    assert r.status == 200
    await tap(h, "sup1", "transfer:approve:1")
    await tap(h, "m1", "transfer:ship:1")
    return 1


async def test_request_approve_ship_receive_seen_on_the_phones(harness: Harness, chain: Chain) -> None:
    h = harness
    await h.sandbox.user_text("s3", "调拨 S001 A001 5")
    await h.settle()
    [approval] = h.sandbox.cards_for("sup1")
    assert [k for _, k in approval.buttons][:2] == ["transfer:approve:1", "transfer:reject:1"]
    assert any("调拨单 1 已提交" in t for t in h.texts_for("s3"))

    await tap(h, "sup1", "transfer:approve:1")
    assert h.sandbox.cards_for("sup1")[0].replace_name == "已同意"
    assert any("已由郑督导同意" in t for t in h.texts_for("s3"))
    await tap(h, "m1", "transfer:ship:1")
    assert h.sandbox.cards_for("m1")[0].replace_name == "已出库"
    assert await stock(h, "S001") == 15
    view = await (await h.client.get("/api/transfers/1", headers=auth())).json()
    assert (view["state"], view["in_transit"]) == ("shipped", 5)

    await tap(h, "m2", "transfer:receive:1")
    assert await stock(h, "S002") == 25
    assert h.sandbox.cards_for("m2")[0].replace_name == "已签收"
    # the requester's receive card was greyed too, with the response_code message/send returned for it
    assert h.sandbox.cards_for("s3")[0].replace_name == "已签收"
    view = await (await h.client.get("/api/transfers/1", headers=auth())).json()
    assert (view["state"], view["received_by"], view["in_transit"]) == ("received", "m2", 0)


async def test_staff_tapping_approve_is_refused_on_the_phone(harness: Harness, chain: Chain) -> None:
    h = harness
    await h.sandbox.user_text("s3", "调拨 S001 A001 5")
    await h.settle()
    [card] = h.sandbox.cards_for("sup1")
    h.clock.advance(minutes=1)
    await h.sandbox.user_click("s1", "transfer:approve:1", card=card)  # a forwarded card, tapped by staff
    await h.settle()
    assert any("只有区域督导或管理员" in t for t in h.texts_for("s1"))
    view = await (await h.client.get("/api/transfers/1", headers=auth())).json()
    assert view["state"] == "requested"
    assert card.replace_name is None


async def test_unreceived_transfer_reaches_the_supervisor_once(harness: Harness, chain: Chain) -> None:
    h = harness
    await request_and_ship(h)
    h.clock.advance(timedelta(hours=24))
    await check_transfers(h.app[DEPS])
    await check_transfers(h.app[DEPS])
    await h.settle()
    assert len([t for t in h.texts_for("sup1") if "仍未签收" in t]) == 1
    await h.sandbox.user_text("m2", "签收 1 4")
    await h.settle()
    assert await stock(h, "S002") == 24
    for who in ("m1", "m2", "sup1"):
        assert any("实发 5，实收 4，少 1" in t for t in h.texts_for(who)), who
    h.clock.advance(timedelta(days=5))
    await check_transfers(h.app[DEPS])
    await h.settle()
    assert not any("仍未签收" in t for t in h.texts_for("admin"))
