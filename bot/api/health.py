"""/healthz (the database answers) and /metrics (Prometheus text); neither needs a token."""

from __future__ import annotations

import logging

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from bot.keys import CLOCK, DEPS, METRICS, SESSIONS

log = logging.getLogger(__name__)
routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    try:
        async with request.app[SESSIONS]() as session:
            await session.execute(text("SELECT 1"))
    except Exception as err:  # any failure to reach the database is "unhealthy", with the reason
        log.warning("health check failed: %s", err)
        return web.json_response({"status": "error", "database": str(err)[:200]}, status=503)
    return web.json_response({"status": "ok"})


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    m = request.app[METRICS]
    async with request.app[SESSIONS]() as session:
        await m.refresh(session, request.app[DEPS].config, request.app[CLOCK].now())  # console settings count
    return web.Response(body=m.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})
