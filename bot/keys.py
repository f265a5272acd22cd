"""Typed aiohttp AppKeys for the long-lived resources the app factory creates."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.config import Settings
from bot.deps import Deps
from bot.metrics import Metrics
from bot.write_gate import WriteGate

if TYPE_CHECKING:
    from bot.demo.panel import DemoPanel
    from bot.queues.inbox import InboxWorker
    from bot.queues.outbox import OutboxWorker
    from bot.queues.photos import PhotoWorker
    from bot.wecom.callback import CallbackEndpoint
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
CALLBACK: web.AppKey[CallbackEndpoint] = web.AppKey("callback")  # the WeCom callback endpoint and its writer
WRITE_LOCK = web.AppKey("inbox_write_lock", WriteGate)  # SQLite's one writer: every writer queues here
MENU_TASK = web.AppKey("stock_menu_task", asyncio.Task[None])  # the scan menu's creation at start-up
DEMO_PANEL: web.AppKey[DemoPanel] = web.AppKey("demo_panel")  # set only under `storebot demo`
# What the dashboard adds under "demo": set only by the demo panel, so the production dashboard never imports the demo.
DASHBOARD_DEMO: web.AppKey[Callable[[web.Application], dict[str, Any]]] = web.AppKey("dashboard_demo")
