"""/dashboard/customers: the customer loop at a glance — stages, segments (count, built, stale, error) and each
campaign's report with its open health alerts (same admin-token access as /dashboard)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy import func, select

from bot.api.dashboard import authorised, environment
from bot.keys import CLOCK, SESSIONS, SETTINGS
from handlers.campaign_health import open_alerts
from models.campaign import SMALL_HOLDOUT, Campaign
from models.campaign_report import report
from models.customer import Customer
from models.segment import Segment, describe

routes = web.RouteTableDef()
BOARD_TZ = ZoneInfo("Asia/Shanghai")  # the board's clock, as /dashboard's "now"
CAMPAIGN_STATES = {"draft": "草稿，待店长确认发起", "launched": "进行中"}
FAILURE_NAMES = {"unreachable": "没有企业微信好友", "not_friend": "已不是好友", "quota": "客户本月消息已满",
                 "error": "发送出错"}
DASH = "—"
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
             "state": CAMPAIGN_STATES.get(c.state, c.state), "launched_at": local(c.launched_at),
             "alerts": [a.message for a in await open_alerts(session, c.id)]} for c in recent.all()]
    for c in campaigns:
        c["view"] = report_view(c["report"])
    for seg in segments:
        seg["built_local"] = local(datetime.fromisoformat(seg["built_at"])) if seg["built_at"] else "还没算过"
    html = environment().get_template("customers.html").render(
        stages=[(STAGE_NAMES[k], int(stages.get(k, 0))) for k in STAGE_NAMES], segments=segments,
        campaigns=campaigns, now=local(now))
    return web.Response(text=html, content_type="text/html")


def local(at: datetime | None) -> str:
    """A time as the board shows it: Beijing time, to the minute."""
    return at.astimezone(BOARD_TZ).strftime("%m-%d %H:%M") if at else DASH


def _pct(value: float | None) -> str:
    return DASH if value is None else f"{value * 100:.1f}%"


def _points(value: float | None) -> str:
    return DASH if value is None else f"{value * 100:+.1f} 个百分点"


def _yuan(value: float | None) -> str:
    return DASH if value is None else f"¥{value:,.2f}"


def report_view(r: dict[str, Any]) -> dict[str, Any]:
    """The report in the board's words: percentages, yuan, Chinese reasons, and "—" (with a note) where a figure
    is missing or rests on too small a sample to mean anything."""
    small = bool(r["small_sample"])
    no_roi = r["roi"] is None or small
    notes = []
    if small:
        notes.append(f"样本太小（发放 {r['treatment']} 人、对照 {r['holdout']} 人，"
                     f"每组至少 {SMALL_HOLDOUT} 人才算数），"
                     "提升、增量 GMV 和 ROI 先不算，用“—”表示。")
    elif r["roi"] is None:
        notes.append("还没有核销，优惠成本为 0，ROI 暂时算不出来。" if not r["discount_cost"]
                     else "没有对照组，算不出增量，ROI 暂时算不出来。")
    failed = [f"{FAILURE_NAMES.get(k, k)} {n} 人" for k, n in r["failed"].items()]
    return {
        "failed": "、".join(failed) if failed else "无",
        "conversion_treatment": _pct(r["conversion_treatment"]), "conversion_holdout": _pct(r["conversion_holdout"]),
        "lift": DASH if small else _points(r["lift"]), "gmv_treatment": _yuan(r["gmv_treatment"]),
        "incremental_gmv": DASH if small else _yuan(r["incremental_gmv"]),
        "discount_cost": _yuan(r["discount_cost"]),
        "roi": DASH if no_roi else f"{r['roi']:.2f}", "notes": notes,
    }
