"""/api/alerts: list alerts by store and state; acknowledge or snooze one."""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from bot.api import ApiError, path_id, query_param, read_body
from bot.errors import UnknownEntity
from bot.keys import DEPS, SESSIONS
from models.alert import STATES, Alert, acknowledge, snooze
from models.catalog import Sku
from models.org import Store, store_by_code

routes = web.RouteTableDef()

LIMIT = 1000


@routes.get("/api/alerts")
async def list_alerts(request: web.Request) -> web.Response:
    store_code = query_param(request, "store")
    state = query_param(request, "state")
    if state is not None and state not in STATES:
        raise ApiError(400, f"state: must be one of {', '.join(STATES)}")
    stmt = (
        select(Alert, Store.code, Sku.code)
        .join(Store, Store.id == Alert.store_id).join(Sku, Sku.id == Alert.sku_id)
        .order_by(Alert.id.desc()).limit(LIMIT)
    )
    async with request.app[SESSIONS]() as session:
        if store_code is not None:
            store = await store_by_code(session, store_code)
            if store is None:
                raise UnknownEntity("store", store_code)
            stmt = stmt.where(Alert.store_id == store.id)
        if state is not None:
            stmt = stmt.where(Alert.state == state)
        rows = (await session.execute(stmt)).all()
    return web.json_response([
        {"id": a.id, "kind": a.kind, "store": store, "sku": sku, "state": a.state, "level": a.level,
         "created_at": a.created_at.isoformat(), "on_hand": a.on_hand, "safety_stock": a.safety_stock,
         "acknowledged_by": a.acknowledged_by}
        for a, store, sku in rows
    ])


class AlertAction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: str = Field("api", min_length=1, max_length=64)  # who acknowledged, for the record
    hours: float = Field(24, gt=0, le=24 * 14)  # snooze length


@routes.post("/api/alerts/{id}/{action:ack|snooze}")
async def act(request: web.Request) -> web.Response:
    """Acknowledge (stops the chain) or snooze one open alert, as the card buttons do."""
    ident = path_id(request, kind="alert")
    body = await read_body(request, AlertAction) if request.can_read_body else AlertAction()
    deps = request.app[DEPS]
    now = deps.clock.now()
    async with deps.sessions() as session, session.begin():
        alert = await session.get(Alert, ident)
        if alert is None:
            raise UnknownEntity("alert", ident)
        if request.match_info["action"] == "ack":
            changed = await acknowledge(session, [alert.id], body.by, now)
        else:
            changed = await snooze(session, [alert.id], now + timedelta(hours=body.hours))
        if not changed:
            raise ApiError(409, f"alert {alert.id} is {alert.state}, not open")
    return web.json_response({"id": alert.id, "changed": True})
