"""The inbox worker: claims stored callbacks and hands them to handlers.dispatch, once each."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web


class InboxWorker:
    """Placeholder until the WeCom-edge issue lands."""


async def inbox_ctx(app: web.Application) -> AsyncIterator[None]:
    yield
