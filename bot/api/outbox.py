"""/api/outbox: inspect queued, sent and dead-lettered messages."""

from __future__ import annotations

from aiohttp import web

routes = web.RouteTableDef()
