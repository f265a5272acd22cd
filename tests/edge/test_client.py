"""WeComClient against the WeCom sandbox as a real HTTP server: tokens, every call, media round trip."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from bot.clock import FakeClock
from bot.config import Settings
from bot.errors import WeComAPIError
from bot.sandbox import Sandbox, SandboxConfig, create_sandbox_app
from bot.wecom.client import WeComClient
from tests.conftest import TEST_CORP_ID, TEST_SECRET

USERS = {f"u{i:02d}": f"员工{i}" for i in range(40)} | {"m1": "王店长"}


@pytest.fixture
async def sandbox(clock: FakeClock) -> AsyncIterator[Sandbox]:
    sb = Sandbox(SandboxConfig(corp_id=TEST_CORP_ID, corp_secret=TEST_SECRET, users=USERS, seed=3), clock=clock)
    server = TestServer(create_sandbox_app(sb))
    await server.start_server()
    sb.config.public_url = str(server.make_url("")).rstrip("/")
    yield sb
    await server.close()


@pytest.fixture
async def make_wecom(
    sandbox: Sandbox, make_settings: Callable[..., Settings], clock: FakeClock
) -> AsyncIterator[Callable[..., WeComClient]]:
    http = aiohttp.ClientSession()

    def make(**overrides: Any) -> WeComClient:
        values = {"api_base": sandbox.config.public_url, "retry_base_seconds": 0.001, "retry_max_seconds": 0.01,
                  **overrides}
        return WeComClient(http, make_settings(wecom=values).wecom, clock)

    yield make
    await http.close()


def text(to: str, content: str) -> dict[str, Any]:
    return {"touser": to, "msgtype": "text", "text": {"content": content}}


async def test_token_is_cached_and_reused(sandbox: Sandbox, make_wecom: Callable[..., WeComClient]) -> None:
    client = make_wecom()
    for i in range(10):
        result = await client.send_message(text("m1", f"第{i}条"))
        assert result.msgid
    assert sandbox.token_requests == 1
    assert [d.payload["text"]["content"] for d in sandbox.messages_for("m1")] == [f"第{i}条" for i in range(10)]


async def test_token_expiry_mid_run_is_refreshed_once(
    sandbox: Sandbox, make_wecom: Callable[..., WeComClient], clock: FakeClock
) -> None:
    client = make_wecom()
    await asyncio.gather(*(client.send_message(text(u, "上午")) for u in list(USERS)[:20]))
    clock.advance(hours=2, seconds=1)
    await asyncio.gather(*(client.send_message(text(u, "下午")) for u in list(USERS)[:20]))
    assert sandbox.token_requests == 2


async def test_token_revoked_early_is_refreshed_once_for_concurrent_senders(
    sandbox: Sandbox, make_wecom: Callable[..., WeComClient]
) -> None:
    client = make_wecom()
    await client.get_token()
    sandbox.revoke_tokens()  # WeCom invalidated it: every request with it now answers 40014
    async with asyncio.timeout(10):
        results = await asyncio.gather(*(client.send_message(text(u, "通知")) for u in USERS))
    assert all(r.msgid for r in results)
    assert sandbox.token_requests == 2
    assert len([d for d in sandbox.deliveries if not d.dropped]) == len(USERS)


async def test_single_flight_under_concurrency(sandbox: Sandbox, make_wecom: Callable[..., WeComClient]) -> None:
    client = make_wecom()
    async with asyncio.timeout(10):
        users = await asyncio.gather(*(client.get_user(u) for u in USERS))
    assert [u["name"] for u in users] == list(USERS.values())
    assert sandbox.token_requests == 1


async def test_wrong_secret_is_a_permanent_error(
    sandbox: Sandbox, make_settings: Callable[..., Settings], clock: FakeClock
) -> None:
    settings = make_settings(wecom={"api_base": sandbox.config.public_url, "secret": "wrong"})
    async with aiohttp.ClientSession() as http:
        with pytest.raises(WeComAPIError) as info:
            await WeComClient(http, settings.wecom, clock).send_message(text("m1", "x"))
    assert info.value.errcode == 40001
    assert sandbox.deliveries == []


async def test_permanent_errors_are_not_retried(sandbox: Sandbox, make_wecom: Callable[..., WeComClient]) -> None:
    client = make_wecom()
    with pytest.raises(WeComAPIError) as info:
        await client.send_message(text("nobody", "x"))
    assert info.value.errcode == 81013
    with pytest.raises(WeComAPIError) as info:
        await client.send_message(text("m1", "长" * 1000))  # 3000 bytes of UTF-8: over 2048
    assert info.value.errcode == 45002
    assert sandbox.deliveries == []


async def test_media_upload_then_get_round_trip(sandbox: Sandbox, make_wecom: Callable[..., WeComClient]) -> None:
    client = make_wecom()
    content = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40 + b"\xff\xd9"
    media_id = await client.upload_media("image", "货架.jpg", content)
    media = await client.get_media(media_id)
    assert media.content == content
    assert media.filename == "货架.jpg"
    with pytest.raises(WeComAPIError) as info:
        await client.get_media("no-such-media")
    assert info.value.errcode == 40007


async def test_media_get_is_retried_through_faults(sandbox: Sandbox, make_wecom: Callable[..., WeComClient]) -> None:
    client = make_wecom(retry_attempts=8)
    media_id = await client.upload_media("file", "report.txt", b"plain text file, not JSON")
    sandbox.config.http_502_rate = 0.5
    for _ in range(10):
        assert (await client.get_media(media_id)).content == b"plain text file, not JSON"
    assert sandbox.faults_injected["http_502"] > 0


async def test_template_card_response_code_and_update(
    sandbox: Sandbox, make_wecom: Callable[..., WeComClient]
) -> None:
    client = make_wecom()
    card = {"card_type": "button_interaction", "task_id": "alert-5", "main_title": {"title": "缺货提醒"},
            "button_list": [{"text": "知道了", "key": "alert:ack:5"}]}
    result = await client.send_message({"touser": "m1", "msgtype": "template_card", "template_card": card})
    assert result.response_code
    await client.update_template_card(
        {"userids": ["m1"], "response_code": result.response_code, "button": {"replace_name": "已处理"}}
    )
    assert sandbox.cards_for("m1")[0].replace_name == "已处理"
    with pytest.raises(WeComAPIError) as info:  # single use
        await client.update_template_card(
            {"userids": ["m1"], "response_code": result.response_code, "button": {"replace_name": "再次"}}
        )
    assert info.value.errcode == 42022


async def test_directory_menu_chat_and_robot_calls(sandbox: Sandbox, make_wecom: Callable[..., WeComClient]) -> None:
    client = make_wecom()
    assert (await client.get_user("m1"))["name"] == "王店长"
    assert (await client.list_departments())[0]["id"] == 1
    await client.create_menu({"button": [{"name": "盘点", "type": "scancode_waitmsg", "key": "scan_count"}]})
    assert sandbox.menus[1000002]["button"][0]["name"] == "盘点"
    sandbox.create_chat("chat-S001", "徐汇店", "m1", ["m1", "u01"])
    await client.appchat_send({"chatid": "chat-S001", "msgtype": "text", "text": {"content": "群通知"}})
    await client.webhook_send("sandbox-robot-key", {"msgtype": "text", "text": {"content": "机器人"}})
    assert [d.channel for d in sandbox.deliveries] == ["appchat", "robot"]
    with pytest.raises(WeComAPIError) as info:
        await client.webhook_send("wrong-key", {"msgtype": "text", "text": {"content": "x"}})
    assert info.value.errcode == 93000
