"""/api/transfers: create a transfer request (same path as the 调拨 chat command) and read one back."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from bot.api import ApiError, path_id, read_body
from bot.errors import UnknownEntity
from bot.keys import DEPS
from handlers.transfer_notify import request_transfer
from models.org import staff_by_userid
from models.transfer import MAX_LINE_QTY, MAX_LINES, LineRequest, TransferFieldError, as_dict, get_transfer

routes = web.RouteTableDef()


class LineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: str = Field(min_length=1, max_length=64)
    qty: int = Field(gt=0, le=MAX_LINE_QTY)


class TransferIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    from_store: str = Field(min_length=1, max_length=64)
    to_store: str = Field(min_length=1, max_length=64)
    requested_by: str = Field(min_length=1, max_length=64)  # userid of a staff member of the destination store
    lines: list[LineIn] = Field(min_length=1, max_length=MAX_LINES)
    urgent: bool = False
    reason: str | None = Field(None, max_length=200)


@routes.post("/api/transfers")
async def create(request: web.Request) -> web.Response:
    body = await read_body(request, TransferIn)
    deps = request.app[DEPS]
    now = deps.clock.now()
    async with deps.sessions() as session, session.begin():
        requester = await staff_by_userid(session, body.requested_by)
        if requester is None:
            raise ApiError(422, f"requested_by: no staff member {body.requested_by!r}")
        try:
            transfer = await request_transfer(
                session, requester, from_store=body.from_store, to_store=body.to_store, now=now,
                lines=[LineRequest(line.sku, line.qty) for line in body.lines], urgent=body.urgent, reason=body.reason,
            )
        except TransferFieldError as err:
            raise ApiError(422, str(err)) from err
        view = await as_dict(session, transfer)
    return web.json_response(view, status=201)


@routes.get("/api/transfers/{id}")
async def read(request: web.Request) -> web.Response:
    ident = path_id(request, kind="transfer")
    async with request.app[DEPS].sessions() as session:
        try:
            transfer = await get_transfer(session, ident)
        except UnknownEntity as err:
            raise ApiError(404, str(err)) from err
        return web.json_response(await as_dict(session, transfer))
