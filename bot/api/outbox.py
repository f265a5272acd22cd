"""/api/outbox: inspect queued, sent and dead-lettered messages, and requeue a dead letter."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select, update

from bot.api import ApiError, int_param, path_id, query_param
from bot.keys import DEPS, OUTBOX
from models.outbox import CHANNELS, STATES, OutboundMessage

routes = web.RouteTableDef()
MAX_LIMIT = 1000


def row_json(row: OutboundMessage) -> dict[str, Any]:
    # A robot's recipient is its webhook key, which works as a password: show only its start.
    recipient = row.recipient if row.channel != "webhook" else f"{row.recipient[:4]}…"
    return {
        "id": row.id,
        "channel": row.channel,
        "recipient": recipient,
        "msgtype": row.msgtype,
        "state": row.state,
        "attempts": row.attempts,
        "last_error": row.last_error,
        "created_at": row.created_at.isoformat(),
        "next_attempt_at": row.next_attempt_at.isoformat() if row.state == "pending" else None,
        "sent_at": row.sent_at.isoformat() if row.sent_at else None,
        "msgid": row.msgid,
    }


@routes.get("/api/outbox")
async def list_outbox(request: web.Request) -> web.Response:
    """GET /api/outbox?state=failed&channel=app&recipient=m1&limit=100 → newest first."""
    stmt = select(OutboundMessage).order_by(OutboundMessage.id.desc())
    state = query_param(request, "state")
    if state is not None:
        if state not in STATES:
            raise ApiError(400, f"state: must be one of {', '.join(STATES)}")
        stmt = stmt.where(OutboundMessage.state == state)
    channel = query_param(request, "channel")
    if channel is not None:
        if channel not in CHANNELS:
            raise ApiError(400, f"channel: must be one of {', '.join(CHANNELS)}")
        stmt = stmt.where(OutboundMessage.channel == channel)
    recipient = query_param(request, "recipient")
    if recipient is not None:
        stmt = stmt.where(OutboundMessage.recipient == recipient)
    limit = int_param(request, "limit", default=100, lo=1, hi=MAX_LIMIT)
    async with request.app[DEPS].sessions() as session:
        rows = (await session.execute(stmt.limit(limit))).scalars().all()
    return web.json_response([row_json(r) for r in rows])


@routes.post("/api/outbox/{id}/retry")
async def retry_outbox(request: web.Request) -> web.Response:
    """Put a dead-lettered message back in the queue (after fixing its cause), with fresh attempts."""
    ident = path_id(request)
    deps = request.app[DEPS]
    async with deps.sessions() as session, session.begin():
        row = await session.get(OutboundMessage, ident)
        if row is None:
            raise ApiError(404, f"No outbox message by the id of {ident!r} was found")
        if row.state != "failed":
            raise ApiError(409, f"outbox message {row.id} is {row.state}; only failed messages can be retried")
        await session.execute(
            update(OutboundMessage).where(OutboundMessage.id == row.id)
            .values(state="pending", attempts=0, next_attempt_at=deps.clock.now(), last_error=None)
        )
    if OUTBOX in request.app:
        request.app[OUTBOX].wake()
    return web.json_response({"id": ident, "state": "pending"})
