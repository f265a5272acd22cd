"""The project's own async WeCom API client on aiohttp (wechatpy's client blocks the event loop)."""

from __future__ import annotations

import aiohttp

from bot.clock import Clock
from bot.config import WeComSettings


class WeComClient:
    """Placeholder: the WeCom-edge issue fills this in (token cache, retries, every call the bot needs)."""

    def __init__(self, session: aiohttp.ClientSession, settings: WeComSettings, clock: Clock) -> None:
        self._session = session
        self._settings = settings
        self._clock = clock
