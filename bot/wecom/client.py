"""The project's own async WeCom API client on aiohttp (wechatpy's client blocks the event loop)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp

from bot.clock import Clock
from bot.config import WeComSettings


@dataclass(frozen=True)
class SendResult:
    msgid: str | None
    response_code: str | None
    invalid_users: tuple[str, ...] = ()


@dataclass(frozen=True)
class Media:
    content: bytes
    content_type: str
    filename: str | None


class WeComClient:
    """The interface the rest of the code relies on; the WeCom-edge work fills in the bodies.

    Every method raises WeComAPIError (errcode != 0 after the client's own retries) or WeComConnectionError.
    """

    def __init__(self, session: aiohttp.ClientSession, settings: WeComSettings, clock: Clock) -> None:
        self._session = session
        self._settings = settings
        self._clock = clock

    async def send_message(self, body: dict[str, Any]) -> SendResult:
        """message/send; body without agentid (added here)."""
        raise NotImplementedError

    async def update_template_card(self, body: dict[str, Any]) -> None:
        raise NotImplementedError

    async def appchat_send(self, body: dict[str, Any]) -> None:
        raise NotImplementedError

    async def webhook_send(self, key: str, body: dict[str, Any]) -> None:
        raise NotImplementedError

    async def get_media(self, media_id: str) -> Media:
        raise NotImplementedError

    async def upload_media(self, kind: str, filename: str, content: bytes) -> str:
        raise NotImplementedError

    async def get_user(self, userid: str) -> dict[str, Any]:
        raise NotImplementedError

    async def list_departments(self, department_id: int | None = None) -> list[dict[str, Any]]:
        raise NotImplementedError

    async def create_menu(self, menu: dict[str, Any]) -> None:
        raise NotImplementedError
