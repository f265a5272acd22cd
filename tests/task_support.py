"""Helpers for the task tests: the shipped templates, typed events through dispatch, a JPEG maker, a media fake."""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from PIL import Image
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import FakeClock
from bot.config import Settings
from bot.deps import Deps
from bot.errors import WeComAPIError, WeComConnectionError
from bot.events import CardClick, Event, ImageMessage, LocationMessage, TextMessage
from bot.sandbox import Sandbox
from bot.wecom.client import Media
from handlers import dispatch
from models.outbox import OutboundMessage
from models.task import TaskInstance
from tests.fixtures_sandbox import Harness

TEMPLATES: list[dict[str, Any]] = [
    {"key": "morning_check", "title": "晨检", "schedule": "0 9 * * *", "proof": "photo", "due_minutes": 60,
     "points": 10, "body": "拍一张店内全景"},
    {"key": "display_photo", "title": "陈列拍照", "schedule": "0 10 * * *", "proof": "photo", "due_minutes": 90,
     "points": 10},
    {"key": "closing_count", "title": "闭店盘点", "schedule": "30 21 * * *", "proof": "count", "due_minutes": 60,
     "points": 20, "count_skus": 3},
    {"key": "open_door", "title": "开门确认", "schedule": "0 8 * * *", "proof": "confirm", "due_minutes": 30,
     "points": 4},
]

# FakeClock starts at 2026-11-24 01:00 UTC = 09:00 in Asia/Shanghai.
NINE_LOCAL = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)

_seq = iter(range(1, 10**9))


def task_settings(make_settings: Callable[..., Settings], **rules: Any) -> Settings:
    return make_settings(tasks=TEMPLATES, task_rules={"push_jitter_seconds": 90, **rules})


def with_settings(deps: Deps, settings: Settings, wecom: Any = None) -> Deps:
    return Deps(config=settings, sessions=deps.sessions, clock=deps.clock, data_dir=deps.data_dir,
                wecom=wecom or deps.wecom)


async def send(deps: Deps, event: Event) -> None:
    async with deps.sessions() as session, session.begin():
        await dispatch(event, deps, session)


def text(user: str, content: str, at: datetime) -> TextMessage:
    return TextMessage(from_user=user, create_time=at, agent_id=1000002, content=content, msg_id=f"t{next(_seq)}")


def image(user: str, media_id: str, at: datetime) -> ImageMessage:
    return ImageMessage(from_user=user, create_time=at, agent_id=1000002, pic_url="http://x/p.jpg",
                        media_id=media_id, msg_id=f"i{next(_seq)}")


def location(user: str, lat: float, lng: float, at: datetime) -> LocationMessage:
    return LocationMessage(from_user=user, create_time=at, agent_id=1000002, latitude=lat, longitude=lng,
                           scale=15, label="门店", msg_id=f"l{next(_seq)}")


def click(user: str, key: str, at: datetime, code: str = "rc-1") -> CardClick:
    return CardClick(from_user=user, create_time=at, agent_id=1000002, key=key, task_id="t",
                     card_type="button_interaction", response_code=code)


def jpeg(color: tuple[int, int, int] = (200, 10, 10), taken: str | None = "2026:11:24 09:05:00") -> bytes:
    img = Image.new("RGB", (16, 16), color)
    exif = Image.Exif()
    if taken:
        exif.get_ifd(0x8769)[36867] = taken
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif)
    return buf.getvalue()


class MediaStore:
    """Stands in for WeCom's media/get only (the sandbox replaces it once the harness exists)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.failures = 0  # the next N calls fail like a network error
        self.calls = 0

    async def get_media(self, media_id: str) -> Media:
        self.calls += 1
        if self.failures > 0:
            self.failures -= 1
            raise WeComConnectionError("media/get timed out")
        if media_id not in self.files:
            raise WeComAPIError(40007, "invalid media_id", "media/get")
        return Media(content=self.files[media_id], content_type="image/jpeg", filename=f"{media_id}.jpg")


async def tasks(sessions: async_sessionmaker[AsyncSession], **where: Any) -> list[TaskInstance]:
    async with sessions() as session:
        stmt = select(TaskInstance).filter_by(**where).order_by(TaskInstance.id)
        return list((await session.execute(stmt)).scalars())


async def outbox(sessions: async_sessionmaker[AsyncSession], recipient: str | None = None) -> list[OutboundMessage]:
    async with sessions() as session:
        stmt = select(OutboundMessage).order_by(OutboundMessage.id)
        if recipient:
            stmt = stmt.where(OutboundMessage.recipient == recipient)
        return list((await session.execute(stmt)).scalars())


def texts(rows: list[OutboundMessage]) -> list[str]:
    return [str(r.payload.get("content", "")) for r in rows if r.msgtype == "text"]


async def task_harness(sandbox: Sandbox, make_client: Callable[..., Awaitable[Any]],
                       make_settings: Callable[..., Settings], clock: FakeClock, *,
                       tasks: list[dict[str, Any]] | None = None, **sections: dict[str, Any]) -> Harness:
    """The shared harness with task templates configured and no background loops (settle() moves all)."""
    settings = make_settings(wecom={"api_base": sandbox.config.public_url}, inbox={"workers": 0},
                             outbox={"background": False}, tasks=TEMPLATES if tasks is None else tasks, **sections)
    client = await make_client(settings)
    sandbox.config.callback_url = str(client.make_url(settings.wecom.callback_path))
    return Harness(sandbox=sandbox, client=client, app=client.server.app, clock=clock)
