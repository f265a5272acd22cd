"""WeComClient retry policy against a scripted WeCom endpoint: each test says exactly what WeCom answers, in
order, so the counts of calls are exact (the sandbox's faults are random; tests/edge/test_client.py uses it)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.clock import FakeClock
from bot.config import Settings
from bot.errors import WeComAPIError, WeComConnectionError
from bot.wecom.client import WeComClient, WeComRateLimited, redact
from tests.conftest import TEST_SECRET

Answer = dict[str, Any] | int  # a JSON body, or an HTTP status to answer with an empty body


@dataclass
class ScriptedWeCom:
    """Answers each path from its script (the last answer repeats); records every request."""

    scripts: dict[str, list[Answer]] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    tokens_issued: int = 0
    hang: bool = False

    def count(self, path: str) -> int:
        return sum(1 for p, _ in self.calls if p == path)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.calls.append((path, dict(request.query)))
        if path == "/cgi-bin/gettoken":
            self.tokens_issued += 1
            await asyncio.sleep(0.01)  # let concurrent callers pile up behind the refresh
            return web.json_response({"errcode": 0, "access_token": f"tok{self.tokens_issued}", "expires_in": 7200})
        if self.hang:
            await asyncio.sleep(5)
        script = self.scripts.get(path, [{"errcode": 0, "errmsg": "ok"}])
        answer = script.pop(0) if len(script) > 1 else script[0]
        if isinstance(answer, int):
            return web.Response(status=answer)
        # WeCom's real answers carry no JSON content type on some paths: the client must not care.
        return web.Response(body=json.dumps(answer).encode(), content_type="text/plain")


@pytest.fixture
async def wecom() -> AsyncIterator[tuple[ScriptedWeCom, str]]:
    fake = ScriptedWeCom()
    app = web.Application()

    async def route(request: web.Request) -> web.StreamResponse:
        return await fake.handle(request)  # looked up per request: tests may swap `handle`

    app.router.add_route("*", "/{tail:.*}", route)
    server = TestServer(app)
    await server.start_server()
    yield fake, str(server.make_url("")).rstrip("/")
    await server.close()


@pytest.fixture
async def make_wecom_client(
    wecom: tuple[ScriptedWeCom, str], make_settings: Callable[..., Settings], clock: FakeClock
) -> AsyncIterator[Callable[..., WeComClient]]:
    http = aiohttp.ClientSession()

    def make(**overrides: Any) -> WeComClient:
        values = {"api_base": wecom[1], "retry_attempts": 3, "retry_base_seconds": 0.001,
                  "retry_max_seconds": 0.005, "request_timeout_seconds": 2, **overrides}
        return WeComClient(http, make_settings(wecom=values).wecom, clock)

    yield make
    await http.close()


async def test_token_fetched_once_and_reused(wecom: tuple[ScriptedWeCom, str], make_wecom_client: Any) -> None:
    fake, _ = wecom
    client = make_wecom_client()
    for _ in range(5):
        await client.get_user("m1")
    assert fake.tokens_issued == 1
    assert {q["access_token"] for p, q in fake.calls if p == "/cgi-bin/user/get"} == {"tok1"}


async def test_token_refreshed_before_expiry_by_the_clock(
    wecom: tuple[ScriptedWeCom, str], make_wecom_client: Any, clock: FakeClock
) -> None:
    fake, _ = wecom
    client = make_wecom_client()
    await client.get_user("m1")
    clock.advance(seconds=7200 - 300 - 1)
    await client.get_user("m1")
    assert fake.tokens_issued == 1
    clock.advance(seconds=2)  # inside the safety margin: refresh before WeCom says it expired
    await client.get_user("m1")
    assert fake.tokens_issued == 2


async def test_concurrent_callers_share_one_token_refresh(
    wecom: tuple[ScriptedWeCom, str], make_wecom_client: Any
) -> None:
    fake, _ = wecom
    client = make_wecom_client()
    async with asyncio.timeout(10):
        await asyncio.gather(*(client.get_user(f"u{i}") for i in range(50)))
    assert fake.tokens_issued == 1


async def test_expired_token_answer_refreshes_once_for_all_concurrent_callers(
    wecom: tuple[ScriptedWeCom, str], make_wecom_client: Any
) -> None:
    fake, _ = wecom
    client = make_wecom_client()
    await client.get_user("warm")  # tok1 cached
    # WeCom invalidates tok1 early: every request still carrying it gets 42001.
    original = fake.handle

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.query.get("access_token") == "tok1":
            fake.calls.append((request.path, dict(request.query)))
            return web.json_response({"errcode": 42001, "errmsg": "access_token expired"})
        return await original(request)

    fake.handle = handle  # type: ignore[method-assign]
    async with asyncio.timeout(10):
        await asyncio.gather(*(client.send_message({"touser": f"u{i}", "msgtype": "text"}) for i in range(20)))
    assert fake.tokens_issued == 2  # the first token, then ONE refresh for all twenty


async def test_token_error_is_retried_once_never_more(
    wecom: tuple[ScriptedWeCom, str], make_wecom_client: Any
) -> None:
    fake, _ = wecom
    fake.scripts["/cgi-bin/message/send"] = [{"errcode": 40014, "errmsg": "invalid access_token"}]
    client = make_wecom_client()
    with pytest.raises(WeComAPIError) as info:
        await client.send_message({"touser": "m1", "msgtype": "text", "text": {"content": "hi"}})
    assert info.value.errcode == 40014
    assert fake.count("/cgi-bin/message/send") == 2
    assert fake.tokens_issued == 2


async def test_token_error_then_success(wecom: tuple[ScriptedWeCom, str], make_wecom_client: Any) -> None:
    fake, _ = wecom
    fake.scripts["/cgi-bin/message/send"] = [{"errcode": 40014}, {"errcode": 0, "msgid": "M1"}]
    result = await make_wecom_client().send_message({"touser": "m1", "msgtype": "text"})
    assert result.msgid == "M1"
    assert [q["access_token"] for p, q in fake.calls if p == "/cgi-bin/message/send"] == ["tok1", "tok2"]


@pytest.mark.parametrize("answer", [{"errcode": -1, "errmsg": "system busy"}, {"errcode": 45033}, 502, 503])
async def test_busy_and_5xx_are_retried_with_backoff(
    wecom: tuple[ScriptedWeCom, str], make_wecom_client: Any, answer: Answer
) -> None:
    fake, _ = wecom
    fake.scripts["/cgi-bin/message/send"] = [answer, answer, {"errcode": 0, "msgid": "M9"}]
    result = await make_wecom_client().send_message({"touser": "m1", "msgtype": "text"})
    assert result.msgid == "M9"
    assert fake.count("/cgi-bin/message/send") == 3


async def test_busy_gives_up_after_the_configured_attempts(
    wecom: tuple[ScriptedWeCom, str], make_wecom_client: Any
) -> None:
    fake, _ = wecom
    fake.scripts["/cgi-bin/message/send"] = [{"errcode": -1, "errmsg": "system busy"}]
    with pytest.raises(WeComAPIError) as info:
        await make_wecom_client(retry_attempts=4).send_message({"touser": "m1", "msgtype": "text"})
    assert info.value.errcode == -1
    assert fake.count("/cgi-bin/message/send") == 4


async def test_5xx_to_the_end_is_a_connection_error(wecom: tuple[ScriptedWeCom, str], make_wecom_client: Any) -> None:
    fake, _ = wecom
    fake.scripts["/cgi-bin/appchat/send"] = [502]
    with pytest.raises(WeComConnectionError, match="HTTP 502"):
        await make_wecom_client().appchat_send({"chatid": "c1", "msgtype": "text"})
    assert fake.count("/cgi-bin/appchat/send") == 3


async def test_timeout_is_retried_then_a_connection_error(
    wecom: tuple[ScriptedWeCom, str], make_wecom_client: Any
) -> None:
    fake, _ = wecom
    client = make_wecom_client(request_timeout_seconds=0.05, retry_attempts=2)
    await client.get_token()
    fake.hang = True
    with pytest.raises(WeComConnectionError, match="timeout"):
        await client.get_user("m1")
    assert fake.count("/cgi-bin/user/get") == 2


@pytest.mark.parametrize("errcode", [81013, 82001, 40007, 45002, 60020, 40001, 42022])
async def test_permanent_errors_are_not_retried(
    wecom: tuple[ScriptedWeCom, str], make_wecom_client: Any, errcode: int
) -> None:
    fake, _ = wecom
    fake.scripts["/cgi-bin/message/send"] = [{"errcode": errcode, "errmsg": "no, hint: [x], from ip: 1.2.3.4"}]
    with pytest.raises(WeComAPIError) as info:
        await make_wecom_client().send_message({"touser": "m1", "msgtype": "text"})
    assert info.value.errcode == errcode
    assert not isinstance(info.value, WeComRateLimited)
    assert fake.count("/cgi-bin/message/send") == 1


async def test_frequency_limit_says_how_long_to_wait(wecom: tuple[ScriptedWeCom, str], make_wecom_client: Any) -> None:
    fake, _ = wecom
    fake.scripts["/cgi-bin/message/send"] = [{"errcode": 45009, "errmsg": "api freq out of limit"}]
    with pytest.raises(WeComRateLimited) as info:
        await make_wecom_client(rate_limit_wait_seconds=42).send_message({"touser": "m1", "msgtype": "text"})
    assert info.value.errcode == 45009
    assert info.value.retry_after_seconds == 42
    assert fake.count("/cgi-bin/message/send") == 1


async def test_wrong_secret_fails_at_gettoken_without_hammering(
    wecom: tuple[ScriptedWeCom, str], make_wecom_client: Any
) -> None:
    fake, _ = wecom

    async def handle(request: web.Request) -> web.StreamResponse:
        fake.calls.append((request.path, dict(request.query)))
        return web.json_response({"errcode": 40001, "errmsg": "invalid credential"})

    fake.handle = handle  # type: ignore[method-assign]
    with pytest.raises(WeComAPIError) as info:
        await make_wecom_client().get_user("m1")
    assert info.value.errcode == 40001
    assert fake.calls == [("/cgi-bin/gettoken", {"corpid": "wwtestcorp0001", "corpsecret": TEST_SECRET})]


async def test_agentid_is_added_and_webhook_uses_its_key_without_a_token(
    wecom: tuple[ScriptedWeCom, str], make_wecom_client: Any
) -> None:
    fake, _ = wecom
    client = make_wecom_client()
    await client.webhook_send("robot-key-1", {"msgtype": "text", "text": {"content": "hi"}})
    assert fake.calls == [("/cgi-bin/webhook/send", {"key": "robot-key-1"})]
    await client.create_menu({"button": []})
    assert fake.calls[-1][0] == "/cgi-bin/menu/create"
    assert fake.calls[-1][1]["agentid"] == "1000002"


async def test_connection_errors_never_log_the_token_or_secret(
    make_settings: Callable[..., Settings], clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = make_settings(wecom={"api_base": "http://127.0.0.1:9", "retry_attempts": 2,
                                    "retry_base_seconds": 0.001, "retry_max_seconds": 0.002})
    async with aiohttp.ClientSession() as http:
        client = WeComClient(http, settings.wecom, clock)
        with pytest.raises(WeComConnectionError) as info:
            await client.webhook_send("SECRETROBOTKEY", {"msgtype": "text"})
        with pytest.raises(WeComConnectionError):
            await client.get_user("m1")
    text = "\n".join(r.getMessage() for r in caplog.records) + str(info.value)
    assert "SECRETROBOTKEY" not in text
    assert TEST_SECRET not in text
    assert redact("x?access_token=abc&key=k1&corpsecret=s") == "x?access_token=***&key=***&corpsecret=***"
