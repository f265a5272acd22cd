"""/api/transfers: create and read transfers."""

from __future__ import annotations

from aiohttp import web

routes = web.RouteTableDef()
