"""The sandbox's user side: encrypted, signed callbacks checked by a tiny receiver that decrypts with wechatpy."""

from __future__ import annotations

import asyncio
import io
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from PIL import Image
from wechatpy.enterprise.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidSignatureException

from bot.sandbox import Sandbox, SandboxError


@dataclass
class Receiver:
    """Stands in for the bot: verifies, decrypts and records each callback; can answer slowly or with errors."""

    crypto: WeChatCrypto
    received: list[dict[str, str]] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)
    params: list[dict[str, str]] = field(default_factory=list)
    delay: float = 0.0
    fail_first: int = 0
    hits: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        q = request.query
        if request.method == "GET":
            echo = self.crypto.check_signature(q["msg_signature"], q["timestamp"], q["nonce"], q["echostr"])
            return web.Response(text=echo)
        body = await request.text()
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.hits <= self.fail_first:
            return web.Response(status=500)
        plain = self.crypto.decrypt_message(body, q["msg_signature"], q["timestamp"], q["nonce"])
        self.raw.append(body)
        self.params.append(dict(q))
        self.received.append({child.tag: (child.text or "") for child in ET.fromstring(plain)} | {"_xml": plain})
        return web.Response(text="")


@pytest.fixture
async def receiver(sandbox: Sandbox) -> AsyncIterator[Receiver]:
    cfg = sandbox.config
    rec = Receiver(WeChatCrypto(cfg.token, cfg.encoding_aes_key, cfg.corp_id))
    app = web.Application()
    app.router.add_route("*", "/wecom/callback", rec.handle)
    server = TestServer(app)
    await server.start_server()
    cfg.callback_url = str(server.make_url("/wecom/callback"))
    yield rec
    await server.close()


async def test_text_callback_is_encrypted_signed_and_well_formed(sandbox: Sandbox, receiver: Receiver) -> None:
    outcome = await sandbox.user_text("s1", "盘点 A001 7")
    assert (outcome.status, outcome.tries, outcome.ok) == (200, 1, True)
    [msg] = receiver.received
    assert msg["MsgType"] == "text" and msg["Content"] == "盘点 A001 7" and msg["FromUserName"] == "s1"
    assert msg["ToUserName"] == sandbox.config.corp_id and msg["AgentID"] == "1000002"
    assert int(msg["CreateTime"]) == int(sandbox.clock.now().timestamp()) and msg["MsgId"].isdigit()
    await sandbox.user_text("s1", "again")  # the clock has not moved: CreateTime still differs (event dedupe key)
    assert int(receiver.received[1]["CreateTime"]) == int(msg["CreateTime"]) + 1
    outer = ET.fromstring(receiver.raw[0])
    assert outer.findtext("ToUserName") == sandbox.config.corp_id and outer.findtext("Encrypt")


async def test_callback_is_signed_with_the_app_token(sandbox: Sandbox, receiver: Receiver) -> None:
    await sandbox.user_text("s1", "hi")
    q = receiver.params[0]
    other = WeChatCrypto("otherToken", sandbox.config.encoding_aes_key, sandbox.config.corp_id)
    with pytest.raises(InvalidSignatureException):
        other.decrypt_message(receiver.raw[0], q["msg_signature"], q["timestamp"], q["nonce"])
    assert q["timestamp"] == str(int(sandbox.clock.now().timestamp()))


async def test_image_is_a_real_jpeg_in_the_media_store(sandbox: Sandbox, receiver: Receiver) -> None:
    await sandbox.user_image("s1")
    [msg] = receiver.received
    assert msg["MsgType"] == "image"
    media = sandbox.get_media(msg["MediaId"])
    assert Image.open(io.BytesIO(media.content)).format == "JPEG"
    async with aiohttp.ClientSession() as http, http.get(msg["PicUrl"]) as resp:
        assert resp.status == 200 and await resp.read() == media.content


async def test_location_and_events(sandbox: Sandbox, receiver: Receiver) -> None:
    await sandbox.user_location("s1", 31.19, 121.43, label="徐汇店")
    await sandbox.user_location_event("s1", 31.19, 121.43)
    await sandbox.user_enter("m1")
    await sandbox.user_menu_click("m1", "help")
    await sandbox.user_scan("s1", "scan_in", "6900000000011")
    loc, loc_event, enter, click, scan = receiver.received
    assert (loc["Location_X"], loc["Location_Y"], loc["Label"]) == ("31.19", "121.43", "徐汇店")
    assert (loc_event["Event"], loc_event["Latitude"], loc_event["Precision"]) == ("LOCATION", "31.19", "30.0")
    assert (enter["Event"], click["Event"], click["EventKey"]) == ("enter_agent", "click", "help")
    assert scan["Event"] == "scancode_waitmsg" and scan["EventKey"] == "scan_in"
    assert "<ScanResult><![CDATA[6900000000011]]></ScanResult>" in scan["_xml"]


async def test_repeat_delivers_identical_callbacks(sandbox: Sandbox, receiver: Receiver) -> None:
    outcome = await sandbox.user_text("s1", "帮助", repeat=3)
    assert outcome.tries == 3 and outcome.ok
    assert len(receiver.received) == 3
    assert len({(m["MsgId"], m["CreateTime"]) for m in receiver.received}) == 1
    assert len(set(receiver.raw)) == 1


async def test_three_tries_on_a_slow_receiver(sandbox: Sandbox, receiver: Receiver) -> None:
    sandbox.config.callback_timeout_seconds = 0.2
    receiver.delay = 0.5
    outcome = await sandbox.user_text("s1", "慢")
    assert (outcome.status, outcome.tries, outcome.ok) == (None, 3, False)
    assert receiver.hits == 3


async def test_non_200_is_retried_until_it_succeeds(sandbox: Sandbox, receiver: Receiver) -> None:
    receiver.fail_first = 2
    outcome = await sandbox.user_text("s1", "重试")
    assert (outcome.status, outcome.tries, outcome.ok) == (200, 3, True)
    assert len(receiver.received) == 1


async def test_verify_url_handshake(sandbox: Sandbox, receiver: Receiver) -> None:
    outcome = await sandbox.verify_url()
    assert outcome.ok and outcome.body.isdigit()


async def test_click_carries_a_fresh_single_use_response_code(sandbox: Sandbox, receiver: Receiver) -> None:
    buttons = [{"text": "批准", "key": "transfer:approve:9"}, {"text": "驳回", "key": "transfer:reject:9"}]
    card = {"card_type": "button_interaction", "task_id": "transfer-9", "main_title": {"title": "调拨申请"},
            "button_list": buttons}
    sent = sandbox.send_message({"touser": "sup1", "msgtype": "template_card", "agentid": 1000002,
                                 "template_card": card})
    with pytest.raises(SandboxError):
        await sandbox.user_click("sup1", "transfer:approve:404")
    await sandbox.user_click("sup1", "transfer:approve:9")
    [event] = receiver.received
    assert (event["Event"], event["EventKey"], event["TaskId"], event["CardType"]) == (
        "template_card_event", "transfer:approve:9", "transfer-9", "button_interaction")
    code = event["ResponseCode"]
    assert code and code != sent["response_code"]
    body = {"agentid": 1000002, "response_code": code, "button": {"replace_name": "已批准"}}
    assert sandbox.update_card(body)["errcode"] == 0
    assert sandbox.cards_for("sup1")[0].replace_name == "已批准"
    with pytest.raises(SandboxError):  # the buttons are gone: nothing left to tap
        await sandbox.user_click("sup1", "transfer:approve:9")
    assert sandbox.user_sent[-1].summary == "[点击] 批准"
