"""The stage for the day scenarios: the real app and the WeCom sandbox over real HTTP, a shared clock moved to
store-local times between steps, and what each phone shows (texts, cards) read as people read it."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from bot.keys import DEPS
from bot.sandbox.records import Delivered
from models.task import TaskInstance
from scheduler.digest_jobs import supervisor_digests
from scheduler.stock_jobs import alert_tick, evaluate_rules
from scheduler.task_jobs import generate_tasks
from tests.browser_support import HAVE_CHROMIUM, chromium
from tests.conftest import auth
from tests.fixtures_sandbox import Harness
from tests.stock.test_pos import sign

SHANGHAI = ZoneInfo("Asia/Shanghai")
SHOTS = Path(os.environ.get("STOREBOT_SCREENSHOTS", "/tmp"))
WIDEST_RIGHT = """() => Math.max(0, ...[...document.querySelectorAll('.bubble, .card, .composer, #send')]
                         .map(e => e.getBoundingClientRect().right))"""
DAY = 24  # 2026-11-24, a Tuesday; the FakeClock starts at 09:00 Shanghai that day


def local(hour: int, minute: int = 0, day: int = DAY) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


@dataclass
class Day:
    """One day in the chain: people type and tap on their phones; the clock only moves forward."""

    h: Harness

    async def at(self, hour: int, minute: int = 0, day: int = DAY) -> None:
        """Move the shared clock to a store-local time, then run what the scheduler would run at that minute."""
        target = local(hour, minute, day)
        assert target >= self.h.clock.now(), "a day only moves forward"
        self.h.clock.set(target)
        deps = self.h.app[DEPS]
        await generate_tasks(deps)
        await self.h.settle()

    async def push(self) -> None:
        """Let the jittered task cards go out (the scheduler pushes them within a few minutes)."""
        self.h.clock.advance(minutes=5)
        await self.h.settle()

    async def say(self, userid: str, text: str) -> list[str]:
        """The person types; returns every text that reached their phone because of it."""
        self.h.clock.advance(seconds=20)
        before = len(self.h.texts_for(userid))
        await self.h.say(userid, text)
        answers = self.h.texts_for(userid)[before:]
        assert answers, f"{userid} got no answer to {text!r}"
        return answers

    async def ask(self, userid: str, text: str) -> str:
        """The one text reply to what the person typed."""
        answers = await self.say(userid, text)
        assert len(answers) == 1, answers
        return answers[0]

    async def tap(self, userid: str, key: str, *, card: Delivered | None = None, repeat: int = 1) -> list[str]:
        """The person taps a button (WeCom may deliver the same tap `repeat` times); the texts it caused them."""
        self.h.clock.advance(seconds=20)
        before = len(self.h.texts_for(userid))
        outcome = await self.h.sandbox.user_click(userid, key, card=card, repeat=repeat)
        assert outcome.ok, outcome
        await self.h.settle()
        return self.h.texts_for(userid)[before:]

    async def photo(self, userid: str, jpeg: bytes) -> list[str]:
        self.h.clock.advance(seconds=20)
        before = len(self.h.texts_for(userid))
        await self.h.photo(userid, jpeg)
        return self.h.texts_for(userid)[before:]

    def texts(self, userid: str) -> list[str]:
        return self.h.texts_for(userid)

    def cards(self, userid: str) -> list[Delivered]:
        return self.h.sandbox.cards_for(userid)

    def card(self, userid: str, task_id_prefix: str) -> Delivered:
        """The person's newest card whose WeCom task_id starts with the prefix."""
        found = [c for c in self.cards(userid) if (c.task_id or "").startswith(task_id_prefix)]
        assert found, f"{userid} has no card {task_id_prefix}*: {[c.task_id for c in self.cards(userid)]}"
        return found[-1]

    async def sale(self, sale_id: str, store: str, sku: str, qty: int) -> None:
        """A till sale through the signed POS webhook, then the stock rules as the scheduler runs them."""
        body = json.dumps({"sale_id": sale_id, "store": store, "sold_at": self.h.clock.now().isoformat(),
                           "lines": [{"sku": sku, "qty": qty, "unit_price": 2.0}]}).encode()
        resp = await self.h.client.post("/api/pos/sales", data=body, headers=sign(body))
        assert resp.status == 200, await resp.text()
        deps = self.h.app[DEPS]
        await evaluate_rules(deps)
        await alert_tick(deps)
        await self.h.settle()

    async def digests(self) -> int:
        n = await supervisor_digests(self.h.app[DEPS])
        await self.h.settle()
        return n

    async def api(self, path: str, **params: str) -> Any:
        resp = await self.h.client.get(path, params=params, headers=auth())
        assert resp.status == 200, await resp.text()
        return await resp.json()

    async def stock(self, store: str, sku: str) -> int:
        return int((await self.api("/api/stock", store=store, sku=sku))["on_hand"])

    async def tasks(self, store_id: int) -> list[TaskInstance]:
        async with self.h.app[DEPS].sessions() as session:
            stmt = select(TaskInstance).where(TaskInstance.store_id == store_id).order_by(TaskInstance.id)
            return list((await session.execute(stmt)).scalars())

    async def phones(self, role: str, *users: str) -> list[Path]:
        """Each person's phone page at 375×812 in Chromium: nothing reaches past the screen sideways (the page, any
        bubble or card, the send button); screenshots of the screen and of the whole day go to SHOTS.
        Without Chromium installed this checks nothing (tests/sandbox/test_phone_roles.py reports the skip), unless
        STOREBOT_TEST_REQUIRE_BROWSER says it must (CI)."""
        if not HAVE_CHROMIUM:
            assert not os.environ.get("STOREBOT_TEST_REQUIRE_BROWSER"), "Chromium is required here"
            return []
        from playwright.async_api import expect

        shots: list[Path] = []
        os.makedirs(SHOTS, exist_ok=True)
        async with chromium() as browser:
            for userid in users:
                context = await browser.new_context(viewport={"width": 375, "height": 812}, locale="zh-CN",
                                                    device_scale_factor=1)
                tab = await context.new_page()
                tab.set_default_timeout(8000)
                await tab.goto(f"{self.h.sandbox.config.public_url}/?user={userid}")
                await expect(tab.locator(".row.bot").last).to_be_visible()
                assert await tab.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0, (
                    f"{userid}'s page overflows sideways")
                assert await tab.evaluate(WIDEST_RIGHT) <= 375, f"something on {userid}'s page is cut off"
                screen = SHOTS / f"day-{role}-{userid}-screen.png"
                await tab.screenshot(path=str(screen))
                # the whole day: let the chat grow with its content, then shoot the full page
                await tab.add_style_tag(content=".phone{height:auto!important}.chat{overflow:visible!important}")
                whole = SHOTS / f"day-{role}-{userid}-whole.png"
                await tab.screenshot(path=str(whole), full_page=True)
                shots += [screen, whole]
                await context.close()
        return shots
