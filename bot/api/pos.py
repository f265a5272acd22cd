"""/api/pos/sales (HMAC-signed POS webhook) and /api/stock/receipts."""

from __future__ import annotations

from aiohttp import web

routes = web.RouteTableDef()
