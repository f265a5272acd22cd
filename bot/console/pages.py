"""Rendering console pages: the jinja environment for templates/console and the shell every page shares."""

from __future__ import annotations

from functools import cache
from typing import Any

from aiohttp import web
from jinja2 import Environment, PackageLoader, StrictUndefined

from bot.console.session import csrf_token
from models.viewer import Viewer

# (path, label) of the main navigation; the boards work fills the pages behind the first six
NAV = (
    ("/console/inventory", "库存"),
    ("/console/tasks", "任务"),
    ("/console/transfers", "调拨"),
    ("/console/people", "人员"),
    ("/console/effect", "成效"),
    ("/console/customers", "客户"),
    ("/console/settings", "设置"),
)


@cache
def environment() -> Environment:
    """HTML pages escape everything they print."""
    return Environment(loader=PackageLoader("templates", "console"), autoescape=True, undefined=StrictUndefined,
                       trim_blocks=True, lstrip_blocks=True)


def render_html(name: str, *, status: int = 200, **context: Any) -> web.Response:
    """A page that needs no session (the login page, "not in the directory")."""
    html = environment().get_template(name).render(**context)
    return web.Response(text=html, status=status, content_type="text/html", headers=_NO_STORE)


def render(request: web.Request, viewer: Viewer, name: str, *, status: int = 200, **context: Any) -> web.Response:
    """A page for a signed-in person: the shell gets the viewer, the nav, the current path and the CSRF token."""
    context.setdefault("title", "")
    html = environment().get_template(name).render(
        viewer=viewer, nav=NAV, path=request.path, csrf=csrf_token(request), **context
    )
    return web.Response(text=html, status=status, content_type="text/html", headers=_NO_STORE)


_NO_STORE = {"Cache-Control": "no-store", "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin"}
