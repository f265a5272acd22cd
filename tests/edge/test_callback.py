"""The callback endpoint through real HTTP: URL verification, acceptance into the inbox, and every refusal."""

from __future__ import annotations

import io
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.app import create_app
from bot.clock import FakeClock
from bot.config import Settings
from bot.errors import ConfigError
from bot.keys import INBOX
from bot.queues.inbox import InboxWorker
from bot.wecom.crypto import CallbackCrypto
from models.inbox import InboundEvent
from models.outbox import OutboundMessage
from tests.conftest import TEST_AES_KEY, TEST_TOKEN, AppClient
from tests.edge.test_callback_parse import envelope, load_payload

PATH = "/wecom/callback"
MakeClient = Callable[..., Awaitable[AppClient]]

# Tencent's sample-code vector (wecom-api.md §1).
VECTOR_TOKEN = "QDG6eK"
VECTOR_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
VECTOR_CORP = "wx5823bf96d3bd56c7"
VECTOR_QUERY = {
    "msg_signature": "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
    "timestamp": "1409659589",
    "nonce": "263014780",
    "echostr": "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==",
}


async def accept_only(make_client: MakeClient, make_settings: Callable[..., Settings], **wecom: Any) -> AppClient:
    """The real app with the inbox worker off: callbacks are stored, nothing processes them."""
    return await make_client(make_settings(inbox={"workers": 0}, wecom=wecom))


def inbox_worker(client: AppClient) -> InboxWorker:
    app = client.app
    assert app is not None
    return app[INBOX]


async def count(sessions: async_sessionmaker[AsyncSession], model: Any) -> int:
    async with sessions() as s:
        return int((await s.execute(select(func.count()).select_from(model))).scalar_one())


async def post(client: AppClient, xml: str, clock: FakeClock, **kw: Any) -> int:
    params, body = envelope(xml, int(clock.now().timestamp()), **kw)
    async with client.post(PATH, params=params, data=body) as resp:
        assert await resp.read() == b"" or resp.status != 200
        return resp.status


async def test_official_url_verification_vector_passes_through_the_endpoint(
    make_client: MakeClient, make_settings: Callable[..., Settings]
) -> None:
    client = await accept_only(make_client, make_settings, token=VECTOR_TOKEN, encoding_aes_key=VECTOR_KEY,
                               corp_id=VECTOR_CORP, max_timestamp_skew_seconds=0)
    async with client.get(PATH, params=VECTOR_QUERY) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/plain"
        assert await resp.read() == b"1616140317555161061"  # exactly: no quotes, BOM or newline
    # The same vector with '+' left unescaped in the query (arrives as spaces) still verifies.
    raw = "&".join(f"{k}={v}" for k, v in VECTOR_QUERY.items())
    async with client.get(f"{PATH}?{raw}") as resp:
        assert (resp.status, await resp.text()) == (200, "1616140317555161061")


async def test_url_verification_with_wrong_signature_or_stale_timestamp_is_refused(
    make_client: MakeClient, make_settings: Callable[..., Settings]
) -> None:
    client = await accept_only(make_client, make_settings, token=VECTOR_TOKEN, encoding_aes_key=VECTOR_KEY,
                               corp_id=VECTOR_CORP)  # default skew 300 s: the 2014 vector is stale
    async with client.get(PATH, params=VECTOR_QUERY) as resp:
        assert resp.status == 403
    other = await accept_only(make_client, make_settings, token="wrong", encoding_aes_key=VECTOR_KEY,
                              corp_id=VECTOR_CORP, max_timestamp_skew_seconds=0)
    async with other.get(PATH, params=VECTOR_QUERY) as resp:
        assert resp.status == 403
        assert "1616140317555161061" not in await resp.text()


async def test_accepted_callback_is_committed_before_the_empty_200(
    make_client: MakeClient, make_settings: Callable[..., Settings], sessions: async_sessionmaker[AsyncSession],
    clock: FakeClock,
) -> None:
    client = await accept_only(make_client, make_settings)
    assert await post(client, load_payload("text", user="s1", msgid=901, content="帮助"), clock) == 200
    async with sessions() as s:
        row = (await s.execute(select(InboundEvent))).scalar_one()
    assert (row.dedupe_key, row.from_user, row.msg_type, row.state) == ("msg:901", "s1", "text", "pending")
    assert row.payload["Content"] == "帮助"


async def test_same_callback_delivered_three_times_has_one_effect(
    make_client: MakeClient, make_settings: Callable[..., Settings], sessions: async_sessionmaker[AsyncSession],
    clock: FakeClock, chain: Any,
) -> None:
    client = await accept_only(make_client, make_settings)
    xml = load_payload("text", user="s1", msgid=902, content="help")
    params, body = envelope(xml, int(clock.now().timestamp()))
    for _ in range(3):  # WeCom retries the identical request
        async with client.post(PATH, params=params, data=body) as resp:
            assert resp.status == 200
    for _ in range(3):  # ... or re-encrypts it with a new nonce
        assert await post(client, xml, clock) == 200
    assert await count(sessions, InboundEvent) == 1
    assert await inbox_worker(client).drain() == 1
    assert await inbox_worker(client).drain() == 0
    async with sessions() as s:
        replies = (await s.execute(select(OutboundMessage))).scalars().all()
    assert [(r.recipient, r.msgtype) for r in replies] == [("s1", "text")]
    assert "盘点 A001 7" in replies[0].payload["content"]
    metrics = await (await client.get("/metrics")).text()
    assert 'storebot_callbacks_total{outcome="accepted"} 1.0' in metrics
    assert 'storebot_callbacks_total{outcome="duplicate"} 5.0' in metrics


def _billion_laughs() -> str:
    ents = '<!ENTITY l0 "lol">' + "".join(
        f'<!ENTITY l{i} "{("&l" + str(i - 1) + ";") * 10}">' for i in range(1, 10)
    )
    return f'<?xml version="1.0"?><!DOCTYPE xml [{ents}]><xml><Encrypt>&l9;</Encrypt></xml>'


async def test_refusals_are_4xx_store_nothing_and_leave_the_server_healthy(
    make_client: MakeClient, make_settings: Callable[..., Settings], sessions: async_sessionmaker[AsyncSession],
    clock: FakeClock,
) -> None:
    client = await accept_only(make_client, make_settings)
    now = int(clock.now().timestamp())
    good = load_payload("text", user="s1", content="帮助")
    params, body = envelope(good, now)

    async def chunks(data: bytes) -> AsyncIterator[bytes]:
        for i in range(0, len(data), 256 * 1024):
            yield data[i : i + 256 * 1024]

    async def send(query: dict[str, str], data: bytes, *, chunked: bool = False) -> int:
        payload: Any = chunks(data) if chunked else io.BytesIO(data)  # chunked: no Content-Length to trust
        async with client.post(PATH, params=query, data=payload) as resp:
            await resp.read()
            return resp.status

    wrong_sig = {**params, "msg_signature": "0" * 40}
    other_corp = envelope(good, now, crypto=CallbackCrypto(TEST_TOKEN, TEST_AES_KEY, "wwothercorp"))
    other_key = envelope(good, now, crypto=CallbackCrypto(TEST_TOKEN, "Z" * 43, "wwtestcorp0001"))
    stale = envelope(good, now - 301)
    future = envelope(good, now + 301)
    broken_inner = envelope("<xml><FromUserName>s1</FromUserName>", now)
    bomb_inner = envelope(_billion_laughs().replace("Encrypt", "Content"), now)
    cases = {
        "wrong signature": (403, wrong_sig, body),
        "wrong corp id": (403, *other_corp),
        "wrong aes key": (403, *other_key),
        "stale timestamp": (403, *stale),
        "future timestamp": (403, *future),
        "missing nonce": (400, {k: v for k, v in params.items() if k != "nonce"}, body),
        "broken outer xml": (400, params, b"<xml><Encrypt>abc"),
        "broken inner xml": (400, *broken_inner),
        "entity bomb outer": (400, params, _billion_laughs().encode()),
        "entity bomb inner": (400, *bomb_inner),
        "external entity": (400, params, b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml>&e;</xml>'),
        "5 MB body": (413, params, b"<xml><Encrypt>" + b"A" * (5 * 1024 * 1024) + b"</Encrypt></xml>"),
        "just over the limit": (413, params, b"x" * (64 * 1024 + 1)),
    }
    for name, (status, query, data) in cases.items():
        assert (name, await send(query, data)) == (name, status)
        async with client.get("/healthz") as resp:
            assert resp.status == 200, name
    assert await send(params, b"<xml><Encrypt>" + b"A" * (5 * 1024 * 1024), chunked=True) == 413
    assert (await client.get("/healthz")).status == 200
    assert await count(sessions, InboundEvent) == 0
    assert await send(params, body) == 200  # the genuine one still gets in afterwards
    assert await count(sessions, InboundEvent) == 1


async def test_ack_is_immediate_while_nothing_processes_the_backlog(
    make_client: MakeClient, make_settings: Callable[..., Settings], sessions: async_sessionmaker[AsyncSession],
    clock: FakeClock,
) -> None:
    client = await accept_only(make_client, make_settings)
    slowest = 0.0
    for i in range(50):
        started = time.perf_counter()
        assert await post(client, load_payload("text", user="s1", msgid=10_000 + i), clock) == 200
        slowest = max(slowest, time.perf_counter() - started)
    assert await count(sessions, InboundEvent) == 50
    # WeCom gives up at 5 s; processing the backlog would take far longer. (A 1 s bound failed on a loaded 2-core
    # machine, where a process may wait a second for a CPU: the bound is the protocol's, with a margin.)
    assert slowest < 4.0, f"slowest ack took {slowest:.3f} s"


@pytest.mark.parametrize("name", ["enter_agent", "location_event", "click", "scancode_waitmsg", "template_card_event"])
async def test_events_are_stored_under_their_event_dedupe_key(
    make_client: MakeClient, make_settings: Callable[..., Settings], sessions: async_sessionmaker[AsyncSession],
    clock: FakeClock, name: str,
) -> None:
    client = await accept_only(make_client, make_settings)
    t = int(clock.now().timestamp())
    xml = load_payload(name, user="m1", time=t)
    assert await post(client, xml, clock) == 200
    assert await post(client, xml, clock) == 200
    async with sessions() as s:
        row = (await s.execute(select(InboundEvent))).scalar_one()
    assert row.dedupe_key.startswith(f"evt:m1:{t}:") and row.msg_type == "event" and row.event


async def test_when_the_database_refuses_the_row_there_is_no_200_and_the_retry_gets_in(
    make_client: MakeClient, make_settings: Callable[..., Settings], sessions: async_sessionmaker[AsyncSession],
    engine: AsyncEngine, clock: FakeClock,
) -> None:
    client = await accept_only(make_client, make_settings)
    params, body = envelope(load_payload("text", user="s1", msgid=777), int(clock.now().timestamp()))
    async with engine.begin() as conn:
        await conn.execute(text("ALTER TABLE inbox RENAME TO inbox_away"))
    try:
        async with client.post(PATH, params=params, data=body) as resp:
            assert resp.status == 503  # not 200: WeCom delivers it again
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("ALTER TABLE inbox_away RENAME TO inbox"))
    async with client.get("/metrics") as resp:
        assert 'storebot_callbacks_total{outcome="store_failed"} 1.0' in await resp.text()
    async with client.post(PATH, params=params, data=body) as resp:
        assert resp.status == 200
    assert await count(sessions, InboundEvent) == 1


def test_an_aes_key_that_is_not_base64_stops_the_app_naming_the_key(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(wecom={"encoding_aes_key": "!" * 43})
    with pytest.raises(ConfigError, match="wecom.encoding_aes_key"):
        create_app(settings)
