"""LiveSettings: what the running server applies — config.toml's seed with the console's overrides laid over it.

One holder per app, shared by its Deps: `deps.config` always reads `current`. The console's reload loop
(bot/console/live.py) swaps `current` when the stored overrides change, on this server and on every other server
over the same database.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from bot.config import Settings

log = logging.getLogger(__name__)


class LiveSettings:
    def __init__(self, seed: Settings) -> None:
        self.seed = seed
        self.current = seed
        self.fingerprint = ""
        self.version = 0  # bumped each time `current` changes
        self._changed = asyncio.Condition()

    async def apply(self, overrides: dict[str, Any], fingerprint: str) -> bool:
        """Lay `overrides` over the seed; True when `current` changed. A stored value the seed's rules now refuse
        (config.toml changed under it) is skipped with an error in the log, never a crash."""
        if fingerprint == self.fingerprint:
            return False
        from models.console_settings import SettingInvalid, effective

        remaining = dict(overrides)
        while True:
            try:
                settings = effective(self.seed, remaining)
                break
            except SettingInvalid as err:
                bad = next((k for k in remaining if err.name == k or err.name.startswith(k + ".")), None)
                bad = bad or next((k for k in remaining if k.startswith(err.name.partition(".")[0])), None)
                bad = bad or next(iter(remaining))
                log.error("console setting %s is not valid any more (%s); using config.toml's value", bad, err)
                remaining.pop(bad)
        self.fingerprint = fingerprint
        if settings == self.current:
            return False
        self.current = settings
        self.version += 1
        async with self._changed:
            self._changed.notify_all()
        return True

    async def wait_for_version(self, version: int) -> None:
        """Return once `version` has reached `version` (callers bound the wait)."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.version >= version)


LIVE = web.AppKey("live_settings", LiveSettings)
