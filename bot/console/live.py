"""Applying console settings without a restart: load the overrides at start, then re-read them periodically."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.keys import SESSIONS
from bot.live_settings import LIVE, LiveSettings
from models.console_settings import load_overrides

log = logging.getLogger(__name__)


async def reload_settings(live: LiveSettings, sessions: async_sessionmaker[AsyncSession]) -> bool:
    """Read the stored overrides; True when the settings in effect changed."""
    async with sessions() as session:
        overrides, fingerprint = await load_overrides(session)
    changed = await live.apply(overrides, fingerprint)
    if changed:
        log.info("console settings applied (version %d)", live.version)
    return changed


async def _loop(live: LiveSettings, sessions: async_sessionmaker[AsyncSession]) -> None:
    while True:
        await asyncio.sleep(live.seed.console.reload_seconds)
        try:
            await reload_settings(live, sessions)
        except (SQLAlchemyError, OSError) as err:  # the database is away for a moment: keep what we have
            log.warning("console settings: reload failed, trying again later: %s", err)


async def live_settings_ctx(app: web.Application) -> AsyncIterator[None]:
    """Overrides in effect before the workers and the scheduler start; re-read every console.reload_seconds."""
    live, sessions = app[LIVE], app[SESSIONS]
    await reload_settings(live, sessions)
    task = asyncio.create_task(_loop(live, sessions), name="console-settings-reload")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
