"""The sandbox's customer contact: tasks wait for the sender, per-customer results (sent, not a friend, quota),
the reminder limit, and the phone page's confirm endpoint; all over real HTTP with the app's own client."""

from __future__ import annotations

from datetime import timedelta

import aiohttp
import pytest

from bot.clock import FakeClock
from bot.config import Settings
from bot.errors import WeComAPIError
from bot.sandbox import Sandbox
from bot.sandbox.externalcontact import contacts_of
from bot.wecom.client import WeComClient
from bot.wecom.externalcontact import add_msg_template, remind, send_results, task_confirmed


async def test_task_waits_for_the_sender_then_reports_each_customer(
    sandbox: Sandbox, settings: Settings, clock: FakeClock,
) -> None:
    ec = contacts_of(sandbox)
    ec.contacts["s1"] = {"wmA": "", "wmB": "", "wmC": ""}
    ec.received["wmC"] = [clock.now() - timedelta(hours=1)]  # quota: 1 a day, already used
    async with aiohttp.ClientSession() as http:
        client = WeComClient(http, settings.wecom.model_copy(update={"api_base": sandbox.config.public_url}), clock)
        msgid = await add_msg_template(client, "s1", ["wmA", "wmB", "wmC", "wmZ"], "会员日8折")
        assert not await task_confirmed(client, msgid)
        assert {r.status for r in await send_results(client, msgid, "s1")} == {0}
        async with http.get(f"{sandbox.config.public_url}/sandbox/api/groupmsg", params={"userid": "s1"}) as r:
            assert [t["msgid"] for t in (await r.json())["tasks"]] == [msgid]
        async with http.post(f"{sandbox.config.public_url}/sandbox/api/groupmsg/confirm", json={"msgid": msgid}) as r:
            assert r.status == 200
        assert await task_confirmed(client, msgid)
        results = {r.external_userid: r.status for r in await send_results(client, msgid, "s1")}
        assert results == {"wmA": 1, "wmB": 1, "wmC": 3, "wmZ": 2}
        for _ in range(3):
            await remind(client, msgid)
        with pytest.raises(WeComAPIError) as err:
            await remind(client, msgid)
        assert err.value.errcode == 41063
        clock.advance(hours=25)
        await remind(client, msgid)  # a new 24 h window
        with pytest.raises(WeComAPIError):
            await add_msg_template(client, "nobody", ["wmA"], "x")
