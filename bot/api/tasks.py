"""/api/tasks: list, run and broadcast tasks; answers to broadcasts."""

from __future__ import annotations

from aiohttp import web

routes = web.RouteTableDef()
