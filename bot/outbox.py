"""The outbox worker: claims due rows, sends them through the WeCom client, records the answer."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web


class OutboxWorker:
    """Placeholder until the WeCom-edge issue lands."""


async def outbox_ctx(app: web.Application) -> AsyncIterator[None]:
    yield
