"""The sandbox's WeCom API over real HTTP: tokens, errcodes, limits, duplicate check, budgets, cards, robots."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from bot.clock import FakeClock
from bot.sandbox import Sandbox, config_from_env


class Api:
    """A bare WeCom caller for the tests (the project's own client is tested elsewhere)."""

    def __init__(self, http: aiohttp.ClientSession, sandbox: Sandbox) -> None:
        self.http = http
        self.sb = sandbox
        self.base = sandbox.config.public_url

    async def token(self, secret: str | None = None) -> dict[str, Any]:
        params = {"corpid": self.sb.config.corp_id, "corpsecret": secret or self.sb.config.corp_secret}
        async with self.http.get(f"{self.base}/cgi-bin/gettoken", params=params) as resp:
            return dict(await resp.json())

    async def post(self, path: str, body: dict[str, Any], token: str | None = None, **query: str) -> dict[str, Any]:
        if token is None:
            token = str((await self.token())["access_token"])
        params = {"access_token": token, **query} if token else dict(query)
        data = json.dumps(body, ensure_ascii=False).encode()  # no Content-Type, as wechatpy sends it
        async with self.http.post(f"{self.base}{path}", params=params, data=data) as resp:
            assert resp.status == 200
            return dict(await resp.json(content_type=None))

    async def text(self, touser: str, content: str = "你好", **extra: Any) -> dict[str, Any]:
        body = {"touser": touser, "msgtype": "text", "agentid": 1000002, "text": {"content": content}, **extra}
        return await self.post("/cgi-bin/message/send", body)


def card(task_id: str, keys: tuple[str, ...] = ("transfer:approve:1", "transfer:reject:1")) -> dict[str, Any]:
    return {
        "card_type": "button_interaction", "task_id": task_id,
        "main_title": {"title": "调拨申请", "desc": "徐汇店 → 静安店"},
        "horizontal_content_list": [{"keyname": "商品", "value": "A001 × 5"}],
        "button_list": [{"text": k.split(":")[1], "key": k, "style": 1} for k in keys],
    }


@pytest.fixture
async def api(sandbox: Sandbox) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as http:
        yield Api(http, sandbox)


async def test_token_is_reused_within_validity_and_expires_by_the_sandbox_clock(
    api: Api, sandbox: Sandbox, clock: FakeClock
) -> None:
    sandbox.config.token_ttl_seconds = 600
    first = await api.token()
    again = await api.token()
    assert first["access_token"] == again["access_token"] and first["expires_in"] == 600
    clock.advance(seconds=601)
    expired = await api.post(
        "/cgi-bin/message/send", {"touser": "m1", "msgtype": "text", "agentid": 1000002, "text": {"content": "x"}},
        token=str(first["access_token"]))
    assert expired["errcode"] == 42001
    assert expired["errmsg"].startswith("access_token expired, hint: [")
    assert "more info at https://open.work.weixin.qq.com/devtool/query?e=42001" in expired["errmsg"]
    fresh = await api.token()
    assert fresh["access_token"] != first["access_token"]
    assert sandbox.token_requests == 3


async def test_token_errors(api: Api, sandbox: Sandbox) -> None:
    assert (await api.token("wrong"))["errcode"] == 40001
    body = {"touser": "m1", "msgtype": "text", "agentid": 1000002, "text": {"content": "x"}}
    assert (await api.post("/cgi-bin/message/send", body, token="bogus"))["errcode"] == 40014
    assert (await api.post("/cgi-bin/message/send", body, token=""))["errcode"] == 41001
    token = str((await api.token())["access_token"])
    sandbox.revoke_tokens()
    assert (await api.post("/cgi-bin/message/send", body, token=token))["errcode"] == 40014
    assert sandbox.deliveries == []


async def test_send_text_without_content_type_reaches_the_phone(api: Api, sandbox: Sandbox) -> None:
    answer = await api.text("m1|nobody|s1", "今天盘点")
    assert answer["errcode"] == 0 and answer["invaliduser"] == "nobody" and answer["msgid"]
    assert "response_code" not in answer
    assert [d.payload["text"]["content"] for d in sandbox.messages_for("m1")] == ["今天盘点"]
    assert [d.to for d in sandbox.deliveries] == ["m1", "s1"]
    everyone = await api.text("@all", "全员通知")
    assert everyone["errcode"] == 0 and len(sandbox.deliveries) == 2 + len(sandbox.config.users)


async def test_send_errcodes_and_nothing_delivered(api: Api, sandbox: Sandbox) -> None:
    assert (await api.text("nobody|ghost"))["errcode"] == 81013
    assert (await api.text(""))["errcode"] == 82001
    assert (await api.text("m1", "字" * 683))["errcode"] == 45002  # 2049 bytes
    assert (await api.text("m1", "a" * 2048))["errcode"] == 0
    bad_type = {"touser": "m1", "msgtype": "sticker", "agentid": 1000002, "sticker": {}}
    assert (await api.post("/cgi-bin/message/send", bad_type))["errcode"] == 40008
    wrong_agent = {"touser": "m1", "msgtype": "text", "agentid": 1, "text": {"content": "x"}}
    assert (await api.post("/cgi-bin/message/send", wrong_agent))["errcode"] == 40056
    big_md = {"touser": "m1", "msgtype": "markdown", "agentid": 1000002, "markdown": {"content": "#" * 2049}}
    assert (await api.post("/cgi-bin/message/send", big_md))["errcode"] == 45002
    assert len(sandbox.deliveries) == 1


async def test_template_card_limits(api: Api, sandbox: Sandbox) -> None:
    async def send(c: dict[str, Any]) -> int:
        body = {"touser": "sup1", "msgtype": "template_card", "agentid": 1000002, "template_card": c}
        return int((await api.post("/cgi-bin/message/send", body))["errcode"])

    assert await send(card("bad task id!")) == 40058
    assert await send(card("x" * 129)) == 40058
    assert await send(card("t-7", keys=tuple(f"k:{i}:1" for i in range(7)))) == 40058
    many_rows = card("t-8")
    many_rows["horizontal_content_list"] = [{"keyname": "k", "value": "v"}] * 7
    assert await send(many_rows) == 40058
    assert await send(card("transfer-1_a@b")) == 0
    notice = {"card_type": "text_notice", "task_id": "notice-1", "main_title": {"title": "通知"}}
    assert await send(notice) == 40058  # text_notice needs card_action
    notice["card_action"] = {"type": 1, "url": "https://example.com"}
    assert await send(notice) == 0
    assert sandbox.deliveries[-1].response_code is None  # only interactive cards get one
    assert await send(card("transfer-1_a@b")) == 40058  # task_id unique per app
    assert len(sandbox.deliveries) == 2


async def test_duplicate_check_delivers_identical_json_once_inside_the_window(
    api: Api, sandbox: Sandbox, clock: FakeClock
) -> None:
    extra = {"enable_duplicate_check": 1, "duplicate_check_interval": 600}
    first = await api.text("m1", "补货提醒", **extra)
    second = await api.text("m1", "补货提醒", **extra)
    assert first["errcode"] == second["errcode"] == 0 and first["msgid"] == second["msgid"]
    assert len(sandbox.messages_for("m1")) == 1 and sandbox.duplicates_suppressed == 1
    clock.advance(seconds=601)
    await api.text("m1", "补货提醒", **extra)
    assert len(sandbox.messages_for("m1")) == 2


async def test_per_member_budget_drops_silently(api: Api, sandbox: Sandbox, clock: FakeClock) -> None:
    answers = [await api.text("s1|m1" if i == 0 else "s1", f"第{i}条") for i in range(32)]
    assert all(a["errcode"] == 0 for a in answers)
    dropped = [d for d in sandbox.deliveries if d.dropped]
    assert [d.payload["text"]["content"] for d in dropped] == ["第30条", "第31条"]
    assert len(sandbox.messages_for("s1")) == 30 and len(sandbox.messages_for("m1")) == 1
    clock.advance(seconds=60)
    assert (await api.text("s1", "下一分钟"))["errcode"] == 0
    assert sandbox.deliveries[-1].dropped is False


async def test_per_member_hourly_budget(api: Api, sandbox: Sandbox, clock: FakeClock) -> None:
    sandbox.config.member_per_hour = 40
    for i in range(45):
        await api.text("s2", f"{i}")
        clock.advance(seconds=10)
    assert len(sandbox.messages_for("s2")) == 40
    assert sum(d.dropped for d in sandbox.deliveries) == 5


async def test_response_code_single_use_and_button_update(api: Api, sandbox: Sandbox) -> None:
    body = {"touser": "sup1", "msgtype": "template_card", "agentid": 1000002, "template_card": card("transfer-1")}
    sent = await api.post("/cgi-bin/message/send", body)
    code = sent["response_code"]
    update = {"userids": ["sup1"], "agentid": 1000002, "response_code": code, "button": {"replace_name": "已批准"}}
    assert (await api.post("/cgi-bin/message/update_template_card", update))["errcode"] == 0
    again = await api.post("/cgi-bin/message/update_template_card", update)
    assert again["errcode"] == 42022 and "used" in again["errmsg"]
    [shown] = sandbox.cards_for("sup1")
    assert shown.replace_name == "已批准" and shown.buttons == []
    unknown = {**update, "response_code": "nope"}
    assert (await api.post("/cgi-bin/message/update_template_card", unknown))["errcode"] == 40058


async def test_response_code_expires(api: Api, sandbox: Sandbox, clock: FakeClock) -> None:
    body = {"touser": "sup1", "msgtype": "template_card", "agentid": 1000002, "template_card": card("transfer-2")}
    code = (await api.post("/cgi-bin/message/send", body))["response_code"]
    clock.advance(hours=72, seconds=1)
    whole = {"agentid": 1000002, "response_code": code, "template_card": card("transfer-2", keys=("a:b:1",))}
    answer = await api.post("/cgi-bin/message/update_template_card", whole)
    assert answer["errcode"] == 42022 and "expired" in answer["errmsg"]
    assert sandbox.cards_for("sup1")[0].updates == []


async def test_whole_card_update_replaces_the_card(api: Api, sandbox: Sandbox) -> None:
    body = {"touser": "sup1", "msgtype": "template_card", "agentid": 1000002, "template_card": card("transfer-3")}
    code = (await api.post("/cgi-bin/message/send", body))["response_code"]
    new = card("transfer-3", keys=("transfer:ship:3",))
    new["main_title"]["title"] = "调拨已批准"
    answer = await api.post("/cgi-bin/message/update_template_card",
                            {"agentid": 1000002, "response_code": code, "template_card": new})
    assert answer["errcode"] == 0
    [shown] = sandbox.cards_for("sup1")
    assert shown.card["main_title"]["title"] == "调拨已批准" and shown.buttons == [("ship", "transfer:ship:3")]


async def test_whole_card_update_with_replace_text_shows_its_buttons_greyed(api: Api, sandbox: Sandbox) -> None:
    body = {"touser": "s1", "msgtype": "template_card", "agentid": 1000002, "template_card": card("task-9")}
    code = (await api.post("/cgi-bin/message/send", body))["response_code"]
    new = {**card("task-9"), "replace_text": "张伟已完成",
           "horizontal_content_list": [{"keyname": "进度", "value": "已全部盘完"}]}
    answer = await api.post("/cgi-bin/message/update_template_card",
                            {"agentid": 1000002, "response_code": code, "template_card": new})
    assert answer["errcode"] == 0
    [shown] = sandbox.cards_for("s1")
    assert shown.replace_name == "张伟已完成" and shown.buttons == []
    assert shown.card["horizontal_content_list"] == [{"keyname": "进度", "value": "已全部盘完"}]


async def test_robot_twenty_per_minute_then_45009(api: Api, sandbox: Sandbox, clock: FakeClock) -> None:
    body = {"msgtype": "text", "text": {"content": "门店通知"}}
    answers = [await api.post("/cgi-bin/webhook/send", body, token="", key="sandbox-robot-key") for _ in range(21)]
    assert [a["errcode"] for a in answers] == [0] * 20 + [45009]
    assert len([d for d in sandbox.deliveries if d.channel == "robot"]) == 20
    assert (await api.post("/cgi-bin/webhook/send", body, token="", key="other"))["errcode"] == 93000
    clock.advance(seconds=60)
    assert (await api.post("/cgi-bin/webhook/send", body, token="", key="sandbox-robot-key"))["errcode"] == 0


async def test_appchat_create_and_send(api: Api, sandbox: Sandbox) -> None:
    created = await api.post("/cgi-bin/appchat/create", {"name": "测试群", "owner": "m1", "userlist": ["m1", "s1"]})
    chatid = created["chatid"]
    sent = await api.post("/cgi-bin/appchat/send", {"chatid": chatid, "msgtype": "text", "text": {"content": "大家好"}})
    assert sent["errcode"] == 0
    assert [d.to for d in sandbox.messages_for("s1")] == [chatid]
    missing = await api.post("/cgi-bin/appchat/send", {"chatid": "nope", "msgtype": "text", "text": {"content": "x"}})
    assert missing["errcode"] == 86003
    store_chat = await api.post("/cgi-bin/appchat/send",
                                {"chatid": "chat-S001", "msgtype": "markdown", "markdown": {"content": "**到货**"}})
    assert store_chat["errcode"] == 0 and len(sandbox.messages_for("m1")) == 2  # both chats


async def test_directory_and_menu(api: Api, sandbox: Sandbox) -> None:
    token = str((await api.token())["access_token"])
    async with api.http.get(f"{api.base}/cgi-bin/user/get", params={"access_token": token, "userid": "m1"}) as r:
        user = await r.json()
    assert user["name"] == "王店长" and user["status"] == 1
    async with api.http.get(f"{api.base}/cgi-bin/user/get", params={"access_token": token, "userid": "x"}) as r:
        assert (await r.json())["errcode"] == 60111
    async with api.http.get(f"{api.base}/cgi-bin/department/list", params={"access_token": token}) as r:
        assert (await r.json())["department"][0]["id"] == 1
    menu = {"button": [{"type": "scancode_waitmsg", "name": "扫码入库", "key": "scan_in"}]}
    assert (await api.post("/cgi-bin/menu/create", menu, agentid="1000002"))["errcode"] == 0
    assert sandbox.menus[1000002] == menu
    assert (await api.post("/cgi-bin/menu/create", {"button": []}, agentid="1000002"))["errcode"] == 40058


def test_config_from_env_reads_storebot_sandbox_variables() -> None:
    cfg = config_from_env({
        "STOREBOT_SANDBOX_CORP_ID": "wwenv", "STOREBOT_SANDBOX_USERS": "a1:甲,b2:乙",
        "STOREBOT_SANDBOX_FAULT_RATE": "0.3", "STOREBOT_SANDBOX_SEED": "7", "STOREBOT_SANDBOX_TOKEN_TTL_SECONDS": "60",
    })
    assert (cfg.corp_id, cfg.users, cfg.fault_rate, cfg.seed, cfg.token_ttl_seconds) == (
        "wwenv", {"a1": "甲", "b2": "乙"}, 0.3, 7, 60)
    assert config_from_env({}).users and config_from_env({}).callback_url is None


async def test_public_url_is_learned_from_the_first_api_call(api: Api, sandbox: Sandbox) -> None:
    url = sandbox.config.public_url
    sandbox.config.public_url = ""
    await api.token()
    assert sandbox.config.public_url == url
