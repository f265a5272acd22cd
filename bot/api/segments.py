"""/api/segments: define a segment by rule (PUT), read its count, build time and sample, page its members."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from bot.api import ApiError, read_body
from bot.keys import DEPS
from bot.segment_rules import RuleError, parse_rule
from models.customer_stage import rebuild_figures, rebuild_stages
from models.segment import describe, get_segment, page_members, rebuild, upsert_segment

routes = web.RouteTableDef()
KEY = re.compile(r"[A-Za-z0-9_\-]{1,64}")
MAX_PAGE = 1000


class SegmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    rule: Any


def _key(request: web.Request) -> str:
    key = request.match_info["key"]
    if not KEY.fullmatch(key):
        raise ApiError(422, "key: use 1 to 64 letters, digits, _ or -")
    return key


async def _describe(request: web.Request, key: str) -> dict[str, Any]:
    deps = request.app[DEPS]
    async with deps.sessions() as session:
        segment = await get_segment(session, key)
        sample = await page_members(session, segment, limit=10, after=None)
    return describe(segment, sample, deps.clock.now(), deps.config.customers)


@routes.put("/api/segments/{key}")
async def put_segment(request: web.Request) -> web.Response:
    """Save the rule (a changed rule is a new version) and build the segment at once."""
    deps = request.app[DEPS]
    key = _key(request)
    body = await read_body(request, SegmentIn)
    try:
        parse_rule(body.rule)
    except RuleError as err:
        raise ApiError(422, str(err)) from err
    if not isinstance(body.rule, dict):
        raise ApiError(422, "rule: must be an object")
    now = deps.clock.now()
    async with deps.sessions() as session, session.begin():
        segment = await upsert_segment(session, key, body.name, body.rule, "api", now)
        await rebuild_figures(session, now)  # a rule may name a stage or a window: current ones
        await rebuild_stages(session, deps.config.customers, now)
        await rebuild(session, segment, now)
    return web.json_response(await _describe(request, key))


@routes.get("/api/segments/{key}")
async def get_segment_route(request: web.Request) -> web.Response:
    return web.json_response(await _describe(request, _key(request)))


@routes.post("/api/segments/{key}/rebuild")
async def rebuild_route(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    key = _key(request)
    now = deps.clock.now()
    async with deps.sessions() as session, session.begin():
        await rebuild_figures(session, now)
        await rebuild_stages(session, deps.config.customers, now)
        await rebuild(session, await get_segment(session, key), now)
    return web.json_response(await _describe(request, key))


@routes.get("/api/segments/{key}/members")
async def members_route(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    key = _key(request)
    raw = request.query.get("limit", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise ApiError(422, f"limit: a whole number from 1 to {MAX_PAGE}")
    after = request.query.get("after") or None
    async with deps.sessions() as session:
        members = await page_members(session, await get_segment(session, key), limit=int(raw), after=after)
    nxt = members[-1] if len(members) == int(raw) else None
    return web.json_response({"key": key, "members": members, "next": nxt})
