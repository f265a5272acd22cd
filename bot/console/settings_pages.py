"""Console settings pages: edit what config.toml seeds, stored in the database and applied without a restart."""

from __future__ import annotations

from aiohttp import web

from bot.console.pages import render
from bot.console.session import require_viewer

routes = web.RouteTableDef()


@routes.get("/console/settings")
async def settings_home(request: web.Request) -> web.StreamResponse:
    viewer = await require_viewer(request)
    return render(request, viewer, "settings.html", title="设置")
