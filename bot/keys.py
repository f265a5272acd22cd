"""Typed aiohttp AppKeys for the long-lived resources the app factory creates."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.config import Settings
from bot.deps import Deps
from bot.metrics import Metrics

if TYPE_CHECKING:
    from bot.inbox import InboxWorker
    from bot.outbox import OutboxWorker
    from bot.photos import PhotoWorker
    from bot.wecom.client import WeComClient

SETTINGS = web.AppKey("settings", Settings)
CLOCK = web.AppKey("clock", Clock)
ENGINE = web.AppKey("engine", AsyncEngine)
SESSIONS = web.AppKey("sessions", async_sessionmaker[AsyncSession])
HTTP = web.AppKey("http", aiohttp.ClientSession)
WECOM: web.AppKey[WeComClient] = web.AppKey("wecom")
DEPS = web.AppKey("deps", Deps)
METRICS = web.AppKey("metrics", Metrics)
INBOX: web.AppKey[InboxWorker] = web.AppKey("inbox")
OUTBOX: web.AppKey[OutboxWorker] = web.AppKey("outbox")
PHOTOS: web.AppKey[PhotoWorker] = web.AppKey("photos")
# What the dashboard adds under "demo": set only by the demo panel, so the production dashboard never imports the demo.
DASHBOARD_DEMO: web.AppKey[Callable[[web.Application], dict[str, Any]]] = web.AppKey("dashboard_demo")
