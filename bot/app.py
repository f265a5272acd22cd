"""The app factory: create_app(settings) wires the database, WeCom client, workers, scheduler and routes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from bot import api, db
from bot.api import stock as stock_api
from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.console import setup_console
from bot.console.live import live_settings_ctx
from bot.deps import Deps
from bot.keys import CLOCK, DEPS, ENGINE, HTTP, METRICS, SESSIONS, SETTINGS, WECOM, WRITE_LOCK
from bot.live_settings import LIVE, LiveSettings
from bot.metrics import Metrics
from bot.queues.inbox import inbox_ctx
from bot.queues.outbox import outbox_ctx
from bot.queues.photos import photos_ctx
from bot.wecom import callback
from bot.wecom.client import WeComClient
from bot.write_gate import WriteGate
from scheduler import scheduler_ctx_factory

log = logging.getLogger(__name__)


def create_app(settings: Settings, *, clock: Clock | None = None, engine: AsyncEngine | None = None) -> web.Application:
    """Build the application. Pass `engine` to share one database between several apps (tests, benches)."""
    app = web.Application(
        middlewares=api.make_middlewares(settings.server.admin_token.get_secret_value()),
        client_max_size=4 * 1024 * 1024,
    )
    app[SETTINGS] = settings
    app[CLOCK] = clock or SystemClock()
    app[METRICS] = Metrics()
    app[LIVE] = LiveSettings(settings)  # deps.config: the seed plus the console's overrides
    app.cleanup_ctx.append(_database(engine))
    app.cleanup_ctx.append(_wecom_client)
    app.cleanup_ctx.append(_deps)
    app.cleanup_ctx.append(live_settings_ctx)  # console settings applied before the workers start
    app.cleanup_ctx.append(inbox_ctx)
    app.cleanup_ctx.append(outbox_ctx)
    app.cleanup_ctx.append(photos_ctx)  # downloads photo proof outside the inbox worker
    app.cleanup_ctx.append(scheduler_ctx_factory(DEPS))
    app.cleanup_ctx.append(stock_api.menu_ctx)  # menu/create with the scan buttons, when wecom.create_menu
    api.setup_routes(app)
    app[WRITE_LOCK] = WriteGate()  # before callback.setup, whose group commit queues on it
    callback.setup(app)
    setup_console(app)
    app.cleanup_ctx.append(callback.writer_ctx)  # last: closes the callback writer before the engine goes
    return app


def _database(shared: AsyncEngine | None):  # type: ignore[no-untyped-def]
    async def database(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        engine = shared or db.make_engine(settings.database)
        try:
            await db.prepare_schema(settings.database, engine)
            app[ENGINE] = engine
            app[SESSIONS] = db.session_factory(engine)
            yield
        finally:
            if shared is None:
                await engine.dispose()

    return database


async def _wecom_client(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    timeout = aiohttp.ClientTimeout(total=settings.wecom.request_timeout_seconds + 5)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        app[HTTP] = http
        app[WECOM] = WeComClient(http, settings.wecom, app[CLOCK])
        yield


async def _deps(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    data_dir = Path(settings.server.data_dir)
    await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
    app[DEPS] = Deps(
        live=app[LIVE], sessions=app[SESSIONS], clock=app[CLOCK], data_dir=data_dir, wecom=app[WECOM],
        write_gate=app[WRITE_LOCK],
    )
    yield
