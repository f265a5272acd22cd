"""/api/customers: behaviour events in (idempotent, all-or-nothing) and a member's profile out."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from bot.api import ApiError, read_body
from bot.errors import UnknownEntity
from bot.keys import DEPS
from models.customer import EventIn, record_events
from models.customer_profile import profile

routes = web.RouteTableDef()

MAX_EVENTS = 1000


class CustomerEventIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    event_id: str = Field(min_length=1, max_length=128)
    customer_id: str = Field(min_length=1, max_length=128)
    type: Literal["visit", "view", "group_message", "mp_order"]
    at: AwareDatetime
    store: str | None = Field(None, max_length=64)
    sku: str | None = Field(None, max_length=64)


class EventsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[CustomerEventIn] = Field(min_length=1, max_length=MAX_EVENTS)


@routes.post("/api/customers/events")
async def post_events(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    body = await read_body(request, EventsIn)
    events = [EventIn(e.event_id, e.customer_id, e.type, e.at, e.store, e.sku) for e in body.events]
    try:
        async with deps.sessions() as session, session.begin():
            accepted, duplicates = await record_events(session, events, deps.clock.now())
    except UnknownEntity as err:
        raise ApiError(422, err.user_message) from err
    return web.json_response({"accepted": accepted, "duplicates": duplicates})


@routes.get("/api/customers/{customer_id}")
async def get_customer(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    now = deps.clock.now()
    async with deps.sessions() as session:
        return web.json_response(await profile(session, request.match_info["customer_id"], deps.config, now))
