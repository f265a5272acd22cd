"""End-to-end fixtures: the WeCom sandbox on a real port and the real app wired to it (the `harness`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.clock import FakeClock
from bot.config import Settings
from bot.keys import INBOX, OUTBOX, PHOTOS, SETTINGS
from bot.sandbox import CallbackOutcome, Sandbox, SandboxConfig, create_sandbox_app
from tests.factories import STAFF, STORES

__all__ = ["Harness", "harness", "make_sandbox", "sandbox", "sandbox_config"]

SandboxClient = TestClient[web.Request, web.Application]


def store_chats() -> dict[str, list[str]]:
    """Each sample store's group chat: its staff plus the region's supervisor."""
    chats: dict[str, list[str]] = {}
    for code, (_, region, _, _, chat) in STORES.items():
        members = [u for u, (_, _, store, _) in STAFF.items() if store == code]
        members += [u for u, (_, role, _, reg) in STAFF.items() if role == "supervisor" and reg == region]
        chats[chat] = members
    return chats


@pytest.fixture
def sandbox_config(settings: Settings) -> SandboxConfig:
    """The sandbox's tenant: the test app's credentials, the sample chain's staff and store chats. Tests may edit
    it (rates, TTLs, faults) before `sandbox` is first used, or later through `sandbox.config`."""
    wecom = settings.wecom
    return SandboxConfig(
        corp_id=wecom.corp_id, corp_secret=wecom.secret.get_secret_value(), agent_id=wecom.agent_id,
        token=wecom.token.get_secret_value(), encoding_aes_key=wecom.encoding_aes_key.get_secret_value(),
        users={u: name for u, (name, *_) in STAFF.items()},
        chats=store_chats(), seed=1234, callback_timeout_seconds=5.0,
    )


@pytest.fixture
async def make_sandbox(clock: FakeClock) -> AsyncIterator[Callable[[SandboxConfig], Awaitable[Sandbox]]]:
    """Start a sandbox on a real port (its clock is the test's FakeClock); `sb.config.public_url` is its URL."""
    servers: list[TestServer] = []

    async def make(config: SandboxConfig) -> Sandbox:
        sb = Sandbox(config, clock=clock)
        server = TestServer(create_sandbox_app(sb))
        await server.start_server()
        servers.append(server)
        config.public_url = str(server.make_url("")).rstrip("/")
        return sb

    yield make
    for server in servers:
        await server.close()


@pytest.fixture
async def sandbox(make_sandbox: Callable[[SandboxConfig], Awaitable[Sandbox]],
                  sandbox_config: SandboxConfig) -> Sandbox:
    return await make_sandbox(sandbox_config)


@dataclass
class Harness:
    """The sandbox and the real app, talking to each other over real HTTP."""

    sandbox: Sandbox
    client: TestClient[web.Request, web.Application]
    app: web.Application
    clock: FakeClock

    @property
    def settings(self) -> Settings:
        return self.app[SETTINGS]

    async def settle(self, limit_seconds: float = 30.0) -> int:
        """Drain the app's inbox, photo worker and outbox until none has anything due; returns how many items
        were handled. The bound catches a hang; it is generous because a loaded 2-core machine runs a drain several
        times slower."""
        total = 0
        async with asyncio.timeout(limit_seconds):
            while True:
                done = 0
                for key in (INBOX, PHOTOS, OUTBOX):
                    worker: Any = self.app.get(key)
                    if worker is not None and hasattr(worker, "drain"):
                        done += await worker.drain()
                total += done
                if done == 0:
                    return total

    async def say(self, userid: str, text: str) -> CallbackOutcome:
        """The user sends a text; the bot must accept it; then everything it caused is sent."""
        return await self._settled(await self.sandbox.user_text(userid, text))

    async def tap(self, userid: str, key: str) -> CallbackOutcome:
        """The user taps a button on their newest card that has it; then everything it caused is sent."""
        return await self._settled(await self.sandbox.user_click(userid, key))

    async def photo(self, userid: str, jpeg: bytes | None = None) -> CallbackOutcome:
        return await self._settled(await self.sandbox.user_image(userid, jpeg))

    async def _settled(self, outcome: CallbackOutcome) -> CallbackOutcome:
        if not outcome.ok:
            raise AssertionError(f"the bot did not accept the callback: {outcome}")
        await self.settle()
        return outcome

    def texts_for(self, userid: str) -> list[str]:
        """The text and markdown bodies the user's phone shows, oldest first."""
        out: list[str] = []
        for d in self.sandbox.messages_for(userid):
            section = d.payload.get(d.msgtype)
            if d.msgtype in ("text", "markdown") and isinstance(section, dict):
                out.append(str(section.get("content", "")))
        return out


@pytest.fixture
async def harness(
    sandbox: Sandbox, make_client: Callable[..., Awaitable[Any]], make_settings: Callable[..., Settings],
    clock: FakeClock,
) -> Harness:
    """The real app with wecom.api_base = the sandbox, registered as the sandbox's callback URL. The app's
    background inbox / outbox loops are off: only settle() moves messages, so a loop holding an event cannot make
    settle() return before the event is handled."""
    settings = make_settings(wecom={"api_base": sandbox.config.public_url}, inbox={"workers": 0},
                             outbox={"background": False})
    client = await make_client(settings)
    sandbox.config.callback_url = str(client.make_url(settings.wecom.callback_path))
    return Harness(sandbox=sandbox, client=client, app=client.server.app, clock=clock)
