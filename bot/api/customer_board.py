"""/dashboard/customers: the customer loop at a glance — stages, segments (count, built, stale, error) and each
campaign's report with its open health alerts (same admin-token access as /dashboard)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import func, select

from bot.api.dashboard import authorised, environment
from bot.keys import CLOCK, SESSIONS, SETTINGS
from handlers.campaign_health import open_alerts
from models.campaign import Campaign
from models.campaign_report import report
from models.customer import Customer
from models.segment import Segment, describe

routes = web.RouteTableDef()
STAGE_NAMES = {"new": "新会员", "active": "活跃", "high_potential": "高潜", "at_risk": "有流失风险", "dormant": "沉睡",
               "lost": "已流失"}


@routes.get("/dashboard/customers")
async def customer_board(request: web.Request) -> web.Response:
    allowed, _ = authorised(request)
    if not allowed:
        return web.Response(text=environment().get_template("denied.html").render(), status=401,
                            content_type="text/html")
    now = request.app[CLOCK].now()
    cfg = request.app[SETTINGS].customers
    async with request.app[SESSIONS]() as session:
        stages = dict((await session.execute(select(Customer.stage, func.count()).group_by(Customer.stage))).all())
        segments = [describe(s, [], now, cfg) for s in
                    (await session.execute(select(Segment).order_by(Segment.key))).scalars()]
        recent = (await session.execute(select(Campaign).order_by(Campaign.created_at.desc()).limit(20))).scalars()
        campaigns: list[dict[str, Any]] = [
            {"name": c.name, "key": c.key, "report": await report(session, c), "problems": c.problems,
             "alerts": [a.message for a in await open_alerts(session, c.id)]} for c in recent.all()]
    html = environment().get_template("customers.html").render(
        stages=[(STAGE_NAMES[k], int(stages.get(k, 0))) for k in STAGE_NAMES], segments=segments,
        campaigns=campaigns)
    return web.Response(text=html, content_type="text/html")
