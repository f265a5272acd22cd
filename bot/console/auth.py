"""Console login: WeCom's web login (OAuth code → auth/getuserinfo → userid), the session cookie and logout."""

from __future__ import annotations

from aiohttp import web

from bot.console.pages import render, render_html
from bot.console.session import current_viewer, end_session

routes = web.RouteTableDef()


@routes.get("/console")
async def home(request: web.Request) -> web.StreamResponse:
    viewer = await current_viewer(request)
    if viewer is None:
        return render_html("login.html")
    return render(request, viewer, "home.html", title="控制台")


@routes.post("/console/logout")
async def logout(request: web.Request) -> web.StreamResponse:
    response = web.HTTPFound("/console")
    end_session(response)
    raise response
