"""The dashboard: a read-only HTML summary per store (stock under the safety line, open alerts, last moves);
`?token=<admin_token>` logs in once and leaves a signed, expiring session cookie."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from jinja2 import Environment, PackageLoader, StrictUndefined
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import signing
from bot.config import Settings
from bot.keys import CLOCK, DASHBOARD_DEMO, SESSIONS, SETTINGS
from models.alert import Alert
from models.catalog import Sku
from models.org import Region, Staff, Store
from models.stock import StockLevel, StockMove

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

COOKIE = "storebot_dashboard"
NEAR_UNITS = 2  # "close to the line": at most this many units above the safety stock
ITEMS_PER_STORE = 8
LAST_MOVES = 20
MOVE_LABELS = {
    "opening": "期初", "import_adjustment": "导入调整", "sale": "销售", "receipt": "入库",
    "transfer_out": "调出", "transfer_in": "调入", "count_adjustment": "盘点调整", "damage": "报损", "return": "退货",
}


@cache
def environment() -> Environment:
    """HTML pages escape everything they print (the chat templates in bot/messages.py do not)."""
    return Environment(loader=PackageLoader("templates", "dashboard"), autoescape=True, undefined=StrictUndefined,
                       trim_blocks=True, lstrip_blocks=True)


@dataclass
class StoreRow:
    code: str
    name: str
    region: str
    manager: str
    timezone: str
    below: int = 0
    near: int = 0
    open_alerts: int | None = None
    items: list[dict[str, Any]] = field(default_factory=list)


def session_key(settings: Settings) -> bytes:
    """The dashboard's cookie key: from server.session_secret, else derived from admin_token (never the token)."""
    server = settings.server
    secret = server.session_secret.get_secret_value() or server.admin_token.get_secret_value()
    return signing.derive_key(secret, "dashboard-session")


def authorised(request: web.Request) -> tuple[bool, bool]:
    """(allowed, came with ?token=): the admin token as a query parameter (a login), or a signed session cookie
    that such a login set and that has not expired."""
    settings = request.app[SETTINGS]
    given = request.query.get("token")
    if given is not None:
        expected = settings.server.admin_token.get_secret_value().encode()
        return secrets.compare_digest(given.encode(), expected), True
    cookie = request.cookies.get(COOKIE, "")
    return bool(cookie) and signing.valid(session_key(settings), cookie, request.app[CLOCK].now()), False


def set_session(response: web.StreamResponse, request: web.Request) -> None:
    """A new signed session in an HttpOnly, SameSite=Lax cookie; the admin token itself is never stored."""
    settings = request.app[SETTINGS]
    lifetime = timedelta(hours=settings.server.dashboard_session_hours)
    value = signing.issue(session_key(settings), request.app[CLOCK].now(), lifetime)
    response.set_cookie(COOKIE, value, path="/dashboard", max_age=int(lifetime.total_seconds()), httponly=True,
                        samesite="Lax", secure=settings.server.public_url.startswith("https://"))


async def _open_alerts(sessions: async_sessionmaker[AsyncSession]) -> dict[int, int] | None:
    """Alerts nobody has acknowledged yet, per store id; None where the database has no alerts table yet."""
    stmt = select(Alert.store_id, func.count()).where(Alert.state == "open").group_by(Alert.store_id)
    try:
        async with sessions() as session:  # its own session: a missing table must not spoil the others
            return dict(list(await session.execute(stmt)))
    except SQLAlchemyError as err:
        log.info("dashboard: alerts not available: %s", err)
        return None


async def _summary(sessions: async_sessionmaker[AsyncSession], now: datetime) -> dict[str, Any]:
    async with sessions() as session:
        stores: dict[int, StoreRow] = {}
        rows = await session.execute(
            select(Store.id, Store.code, Store.name, Region.name, Store.timezone).join(Region).order_by(Store.code)
        )
        for ident, code, name, region, zone in rows:
            stores[ident] = StoreRow(code=code, name=name, region=region, manager="", timezone=zone)
        managers = await session.execute(
            select(Staff.store_id, Staff.name).where(Staff.role == "manager", Staff.active).order_by(Staff.id)
        )
        for store_id, name in managers:
            if store_id in stores and not stores[store_id].manager:
                stores[store_id].manager = name
        low = await session.execute(
            select(StockLevel.store_id, Sku.code, Sku.name, StockLevel.on_hand, StockLevel.safety_stock)
            .join(Sku)
            .where(StockLevel.on_hand <= StockLevel.safety_stock + NEAR_UNITS, StockLevel.safety_stock > 0)
            .order_by(StockLevel.store_id, StockLevel.on_hand - StockLevel.safety_stock, Sku.code)
        )
        for store_id, code, name, on_hand, safety in low:
            row = stores.get(store_id)
            if row is None:
                continue
            under = on_hand < safety
            row.below += under
            row.near += not under
            if len(row.items) < ITEMS_PER_STORE:
                row.items.append({"code": code, "name": name, "on_hand": on_hand, "safety": safety, "under": under})
        moves = await session.execute(
            select(StockMove.created_at, StockMove.store_id, Sku.code, Sku.name, StockMove.kind, StockMove.qty,
                   StockMove.balance_after, StockMove.actor)
            .join(Sku, Sku.id == StockMove.sku_id)
            .order_by(StockMove.id.desc())
            .limit(LAST_MOVES)
        )
        last_moves = []
        for at, store_id, code, name, kind, qty, balance, actor in moves:
            store = stores.get(store_id)
            tz = ZoneInfo(store.timezone if store else "Asia/Shanghai")
            last_moves.append({
                "at": at.astimezone(tz).strftime("%m-%d %H:%M"), "store": store.name if store else store_id,
                "sku": f"{code} {name}", "kind": MOVE_LABELS.get(kind, kind), "qty": qty, "balance": balance,
                "actor": actor or "",
            })
        sku_count = (await session.execute(select(func.count()).select_from(Sku))).scalar_one()
    alerts = await _open_alerts(sessions)
    if alerts is not None:
        for ident, row in stores.items():
            row.open_alerts = alerts.get(ident, 0)
    return {
        "now": now.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M"),
        "stores": list(stores.values()),
        "sku_count": sku_count,
        "below_total": sum(s.below for s in stores.values()),
        "near_total": sum(s.near for s in stores.values()),
        "alerts_total": sum(s.open_alerts or 0 for s in stores.values()) if alerts is not None else None,
        "moves": last_moves,
        "near_units": NEAR_UNITS,
    }


def _demo_context(app: web.Application) -> dict[str, Any] | None:
    """The demo panel's forms and walkthrough, only when `storebot demo` turned the panel on."""
    extra = app.get(DASHBOARD_DEMO)
    return extra(app) if extra is not None else None


@routes.get("/")
async def root(request: web.Request) -> web.Response:
    raise web.HTTPFound("/dashboard")


@routes.get("/dashboard")
async def dashboard(request: web.Request) -> web.Response:
    allowed, from_query = authorised(request)
    if not allowed:
        html = environment().get_template("denied.html").render()
        return web.Response(text=html, status=401, content_type="text/html")
    context = await _summary(request.app[SESSIONS], request.app[CLOCK].now())
    context["demo"] = _demo_context(request.app)
    html = environment().get_template("index.html").render(**context)
    response = web.Response(text=html, content_type="text/html", headers={"Cache-Control": "no-store"})
    if from_query:
        set_session(response, request)
    return response
