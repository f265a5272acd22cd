"""Boards and exports (owned by the boards work)."""

from __future__ import annotations

from aiohttp import web

routes = web.RouteTableDef()
