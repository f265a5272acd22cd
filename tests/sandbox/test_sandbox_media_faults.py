"""The sandbox's media store and injected faults, over real HTTP."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from PIL import Image

from bot.clock import FakeClock
from bot.sandbox import Sandbox, SandboxConfig
from bot.sandbox.user import sample_jpeg


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _token(http: aiohttp.ClientSession, sb: Sandbox) -> str:
    params = {"corpid": sb.config.corp_id, "corpsecret": sb.config.corp_secret}
    async with http.get(f"{sb.config.public_url}/cgi-bin/gettoken", params=params) as resp:
        return str((await resp.json())["access_token"])


async def _upload(http: aiohttp.ClientSession, sb: Sandbox, kind: str, content: bytes) -> dict[str, Any]:
    form = aiohttp.FormData()
    form.add_field("media", io.BytesIO(content), filename="shelf.jpg", content_type="image/jpeg")
    params = {"access_token": await _token(http, sb), "type": kind}
    async with http.post(f"{sb.config.public_url}/cgi-bin/media/upload", params=params, data=form) as resp:
        return dict(await resp.json())


async def _get_json(http: aiohttp.ClientSession, url: str, params: dict[str, str]) -> dict[str, Any]:
    async with http.get(url, params=params) as resp:
        return dict(await resp.json())


async def _post_json(http: aiohttp.ClientSession, url: str, params: dict[str, str], body: Any) -> dict[str, Any]:
    async with http.post(url, params=params, data=json.dumps(body).encode()) as resp:
        return dict(await resp.json(content_type=None))


async def test_media_round_trip(http: aiohttp.ClientSession, sandbox: Sandbox) -> None:
    jpeg = sample_jpeg()
    uploaded = await _upload(http, sandbox, "image", jpeg)
    assert uploaded["errcode"] == 0 and uploaded["type"] == "image" and uploaded["created_at"].isdigit()
    params = {"access_token": await _token(http, sandbox), "media_id": uploaded["media_id"]}
    async with http.get(f"{sandbox.config.public_url}/cgi-bin/media/get", params=params) as resp:
        assert resp.headers["Content-Type"] == "image/jpeg"
        assert resp.headers["Content-disposition"] == 'attachment; filename="shelf.jpg"'
        body = await resp.read()
    assert body == jpeg
    assert Image.open(io.BytesIO(body)).size == (320, 240)


async def test_media_errors(http: aiohttp.ClientSession, sandbox: Sandbox, clock: FakeClock) -> None:
    assert (await _upload(http, sandbox, "image", b"tiny"))["errcode"] == 40006
    assert (await _upload(http, sandbox, "image", b"x" * (2 * 1024 * 1024 + 1)))["errcode"] == 40009
    assert (await _upload(http, sandbox, "sticker", b"x" * 100))["errcode"] == 40004
    media_id = (await _upload(http, sandbox, "file", b"x" * 100))["media_id"]
    token = await _token(http, sandbox)
    url = f"{sandbox.config.public_url}/cgi-bin/media/get"
    async with http.get(url, params={"access_token": token, "media_id": "unknown"}) as resp:
        assert resp.content_type == "application/json" and (await resp.json())["errcode"] == 40007
    clock.advance(days=3, seconds=1)
    token = await _token(http, sandbox)
    async with http.get(url, params={"access_token": token, "media_id": media_id}) as resp:
        assert (await resp.json())["errcode"] == 40007


async def _send_until_ok(http: aiohttp.ClientSession, sb: Sandbox, token: str, body: dict[str, Any]) -> int:
    """A minimal retrying client: returns how many attempts one message took."""
    for attempt in range(1, 50):
        url = f"{sb.config.public_url}/cgi-bin/message/send"
        async with http.post(url, params={"access_token": token}, data=json.dumps(body).encode()) as resp:
            if resp.status == 200 and (await resp.json(content_type=None))["errcode"] == 0:
                return attempt
    raise AssertionError("never delivered")


async def test_injected_faults_honour_rates_and_never_deliver(
    http: aiohttp.ClientSession, make_sandbox: Callable[[SandboxConfig], Awaitable[Sandbox]],
    sandbox_config: SandboxConfig,
) -> None:
    sandbox_config.member_per_minute = 10_000
    sb = await make_sandbox(sandbox_config)
    token = await _token(http, sb)
    sb.config.fault_rate = 0.2
    sb.config.http_502_rate = 0.1
    attempts = 0
    for i in range(300):
        body = {"touser": "m1", "msgtype": "text", "agentid": 1000002, "text": {"content": f"第{i}条"}}
        attempts += await _send_until_ok(http, sb, token, body)
    contents = [d.payload["text"]["content"] for d in sb.deliveries]
    assert len(contents) == 300 and len(set(contents)) == 300  # every message exactly once
    share_502 = sb.faults_injected["http_502"] / attempts
    share_busy = sb.faults_injected["errcode"] / attempts
    assert 0.05 < share_502 < 0.15 and 0.14 < share_busy < 0.26


async def test_errcode_fault_is_the_wecom_busy_shape(
    http: aiohttp.ClientSession, make_sandbox: Callable[[SandboxConfig], Awaitable[Sandbox]],
    sandbox_config: SandboxConfig,
) -> None:
    sandbox_config.fault_rate = 1.0
    sb = await make_sandbox(sandbox_config)
    params = {"corpid": sb.config.corp_id, "corpsecret": sb.config.corp_secret}
    async with http.get(f"{sb.config.public_url}/cgi-bin/gettoken", params=params) as resp:
        answer = await resp.json()
    assert answer["errcode"] == -1 and answer["errmsg"].startswith("system busy, hint: [")
    assert sb.token_requests == 0


async def test_slow_answers_come_after_slow_seconds_and_deliver(
    http: aiohttp.ClientSession, make_sandbox: Callable[[SandboxConfig], Awaitable[Sandbox]],
    sandbox_config: SandboxConfig,
) -> None:
    sandbox_config.slow_rate = 1.0
    sandbox_config.slow_seconds = 0.3
    sb = await make_sandbox(sandbox_config)
    params = {"corpid": sb.config.corp_id, "corpsecret": sb.config.corp_secret}
    url = f"{sb.config.public_url}/cgi-bin/gettoken"
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with http.get(url, params=params) as resp:
        assert "access_token" in await resp.json()
    assert loop.time() - started >= 0.3  # a lower bound: a loaded machine only makes it later
    # The work is done before the slow answer: the sandbox holds that answer until the test lets it go, so a
    # client that gives up (here after 0.1 s) gives up after the work, however slowly this machine runs.
    sb.slow_hold = asyncio.Event()
    request = asyncio.create_task(_get_json(http, url, params))
    await asyncio.wait_for(sb.slow_holding.wait(), 10)  # the answer is held: the sandbox did the work
    assert sb.token_requests == 2
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.shield(request), 0.1)
    sb.slow_hold.set()
    assert "access_token" in await request  # and the held answer does arrive


async def test_image_message_needs_media_the_tenant_holds(http: aiohttp.ClientSession, sandbox: Sandbox) -> None:
    media_id = (await _upload(http, sandbox, "image", sample_jpeg()))["media_id"]
    token = await _token(http, sandbox)
    url = f"{sandbox.config.public_url}/cgi-bin/message/send"
    answers = []
    for mid in (media_id, "sbx-image-unknown"):
        body = {"touser": "s1", "msgtype": "image", "agentid": 1000002, "image": {"media_id": mid}}
        async with http.post(url, params={"access_token": token}, data=json.dumps(body).encode()) as resp:
            answers.append((await resp.json(content_type=None))["errcode"])
    assert answers == [0, 40007]
    assert [d.payload["image"]["media_id"] for d in sandbox.messages_for("s1")] == [media_id]


async def test_a_retry_after_a_slow_answer_is_caught_by_the_duplicate_check(
    http: aiohttp.ClientSession, sandbox: Sandbox
) -> None:
    token = await _token(http, sandbox)
    sandbox.config.slow_rate = 1.0
    sandbox.slow_hold = asyncio.Event()  # the answer comes only when the test lets it go: after the client gave up
    body = {"touser": "m1", "msgtype": "text", "agentid": 1000002, "text": {"content": "到货通知"},
            "enable_duplicate_check": 1}
    url = f"{sandbox.config.public_url}/cgi-bin/message/send"
    first = asyncio.create_task(_post_json(http, url, {"access_token": token}, body))
    await asyncio.wait_for(sandbox.slow_holding.wait(), 10)  # the answer is held: the sandbox did the work
    assert len(sandbox.messages_for("m1")) == 1
    with pytest.raises(TimeoutError):  # the client gives up after 0.1 s
        await asyncio.wait_for(first, 0.1)
    sandbox.slow_hold.set()
    sandbox.config.slow_rate = 0.0
    async with http.post(url, params={"access_token": token}, data=json.dumps(body).encode()) as resp:
        assert (await resp.json(content_type=None))["errcode"] == 0
    assert len(sandbox.messages_for("m1")) == 1 and sandbox.duplicates_suppressed == 1
