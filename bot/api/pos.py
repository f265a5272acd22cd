"""/api/pos/sales (HMAC-signed POS webhook) and /api/stock/receipts (bearer): atomic, idempotent bookings."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt
from sqlalchemy.ext.asyncio import AsyncSession

from bot.api import ApiError, read_json, validate
from bot.config import Settings
from bot.keys import DEPS, METRICS, WRITE_LOCK
from bot.write_gate import gate
from models.alert import react
from models.customer_sales import customer_sale
from models.stock import Booked, SaleLineIn, book_receipt, book_sale

routes = web.RouteTableDef()

MAX_LINES = 500


class SaleLine(BaseModel):
    model_config = ConfigDict(extra="ignore")

    sku: str = Field(min_length=1, max_length=64)
    qty: StrictInt = Field(gt=0)
    unit_price: Decimal = Field(Decimal(0), ge=0, max_digits=12, decimal_places=2)


class SaleIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    sale_id: str = Field(min_length=1, max_length=128)
    store: str = Field(min_length=1, max_length=64)
    sold_at: AwareDatetime
    lines: list[SaleLine] = Field(min_length=1, max_length=MAX_LINES)
    customer_id: str | None = Field(None, max_length=128)
    coupon_code: str | None = Field(None, max_length=64)


class ReceiptLine(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: str = Field(min_length=1, max_length=64)
    qty: StrictInt = Field(gt=0)


class ReceiptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    receipt_id: str = Field(min_length=1, max_length=128)
    store: str = Field(min_length=1, max_length=64)
    received_at: AwareDatetime
    lines: list[ReceiptLine] = Field(min_length=1, max_length=MAX_LINES)
    actor: str | None = Field(None, max_length=64)


def check_signature(secret: str, body: bytes, header: str | None) -> bool:
    """X-Storebot-Signature: sha256=<hex HMAC-SHA256 of the raw body>, compared in constant time."""
    if not secret or not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(header.removeprefix("sha256=").strip().lower().encode(), expected.encode())


def _write_lock(request: web.Request) -> contextlib.AbstractAsyncContextManager[object]:
    """On SQLite, queue behind the app's one write lock instead of SQLite's sleeping busy timeout."""
    sqlite = not request.app[DEPS].config.database.url.startswith("postgresql")
    return gate(request.app.get(WRITE_LOCK), sqlite=sqlite, background=False)


def _check_when(settings: Settings, field: str, when: datetime, now: datetime) -> None:
    """A sale or receipt dated outside [now - max_sale_age_days, now + max_sale_ahead_hours] is refused: it would
    skew the count that follows and last_sold_at. Extreme dates (year 1, 9999) are refused the same way."""
    ahead, age = timedelta(hours=settings.pos.max_sale_ahead_hours), timedelta(days=settings.pos.max_sale_age_days)
    try:
        if when > now + ahead:
            raise ApiError(422, f"{field}: {when.isoformat()} is more than {settings.pos.max_sale_ahead_hours:g} "
                                "hours ahead of the server's clock")
        if when < now - age:
            raise ApiError(422, f"{field}: {when.isoformat()} is older than {settings.pos.max_sale_age_days} days")
        when.astimezone(UTC)  # stored as UTC: a date at the edge of the calendar must not fail at the database
    except (OverflowError, ValueError) as err:
        raise ApiError(422, f"{field}: {when.isoformat()} is out of range") from err


def _check_qty(settings: Settings, qtys: list[int]) -> None:
    for i, qty in enumerate(qtys):
        if qty > settings.pos.max_line_qty:
            raise ApiError(422, f"lines.{i}.qty: {qty} is above the limit of {settings.pos.max_line_qty}")


@routes.post("/api/pos/sales")
async def post_sale(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    metrics = request.app[METRICS]
    raw = await request.read()
    if not check_signature(deps.config.pos.webhook_secret.get_secret_value(), raw,
                           request.headers.get("X-Storebot-Signature")):
        metrics.pos_sales.labels("bad_signature").inc()
        raise ApiError(401, "missing or wrong X-Storebot-Signature")
    body = validate(SaleIn, await read_json(request))
    _check_qty(deps.config, [line.qty for line in body.lines])
    now = deps.clock.now()
    _check_when(deps.config, "sold_at", body.sold_at, now)
    async with _write_lock(request), deps.sessions() as session, session.begin():
        booked = await book_sale(
            session, sale_id=body.sale_id, store_code=body.store, sold_at=body.sold_at, customer_id=body.customer_id,
            lines=[SaleLineIn(line.sku, line.qty, line.unit_price) for line in body.lines], now=now,
        )
        await _after(booked, deps.config, session, now)
        extra = {} if booked.duplicate else await customer_sale(
            session, sale_id=body.sale_id, store_id=booked.store_id, sold_at=body.sold_at, now=now,
            total=sum((line.unit_price * line.qty for line in body.lines), Decimal(0)),
            customer_id=body.customer_id, coupon_code=body.coupon_code, cfg=deps.config.customers)
    metrics.pos_sales.labels("duplicate" if booked.duplicate else "booked").inc()
    return web.json_response({"sale_id": body.sale_id, "duplicate": booked.duplicate, **extra})


@routes.post("/api/stock/receipts")
async def post_receipt(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    body = validate(ReceiptIn, await read_json(request))
    _check_qty(deps.config, [line.qty for line in body.lines])
    now = deps.clock.now()
    _check_when(deps.config, "received_at", body.received_at, now)
    async with _write_lock(request), deps.sessions() as session, session.begin():
        booked = await book_receipt(
            session, receipt_id=body.receipt_id, store_code=body.store, received_at=body.received_at,
            lines=[(line.sku, line.qty) for line in body.lines], actor=body.actor or "api", now=now,
        )
        await _after(booked, deps.config, session, now)
    return web.json_response({"receipt_id": body.receipt_id, "duplicate": booked.duplicate})


async def _after(booked: Booked, settings: Settings, session: AsyncSession, now: datetime) -> None:
    if not booked.duplicate:
        await react(session, rules=settings.rules, alerts=settings.alerts, now=now, pairs=list(booked.pairs))
