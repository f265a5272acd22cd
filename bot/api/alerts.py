"""/api/alerts: list alerts; acknowledge and snooze."""

from __future__ import annotations

from aiohttp import web

routes = web.RouteTableDef()
