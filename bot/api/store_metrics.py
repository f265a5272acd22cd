"""/api/metrics/stores: accuracy, slow-moving share and emergency replenishments per store."""

from __future__ import annotations

from aiohttp import web

routes = web.RouteTableDef()
