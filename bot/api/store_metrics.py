"""/api/metrics/stores: accuracy, slow-moving share and emergency replenishments per store and overall."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from aiohttp import web

from bot.api import ApiError, date_param
from bot.keys import DEPS
from models.loop_metrics import store_metrics

routes = web.RouteTableDef()


@routes.get("/api/metrics/stores")
async def get_store_metrics(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    now = deps.clock.now()
    today = now.date()
    first = date_param(request, "from", today - timedelta(days=30))
    last = date_param(request, "to", today)
    if last < first:
        raise ApiError(400, "to: must not be before from")
    start = datetime.combine(first, time(), tzinfo=UTC)
    end = datetime.combine(last + timedelta(days=1), time(), tzinfo=UTC)  # "to" is inclusive
    async with deps.sessions() as session:
        view = await store_metrics(session, deps.config, now=now, date_from=start, date_to=end)
    return web.json_response(view)
