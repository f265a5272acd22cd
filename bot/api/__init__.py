"""HTTP API plumbing: bearer auth on /api/*, JSON errors, body validation, and the route tables."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.typedefs import Middleware
from pydantic import BaseModel, ValidationError

from bot.errors import DomainError, NotAllowed, UnknownEntity

log = logging.getLogger(__name__)

# Paths under /api/ that authenticate themselves (the POS webhook signs its body instead).
PUBLIC_API_PATHS = frozenset({"/api/pos/sales"})

M = TypeVar("M", bound=BaseModel)
DB_ID_MAX = 2**31 - 1  # primary keys are PostgreSQL INTEGER
MAX_PARAM_CHARS = 200
DATE_MIN, DATE_MAX = date(2000, 1, 1), date(2099, 12, 31)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(message)


def json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def make_middlewares(admin_token: str) -> list[Middleware]:
    expected = f"Bearer {admin_token}".encode()

    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as err:
            return json_error(err.status, err.message)
        except UnknownEntity as err:
            return json_error(404 if request.method == "GET" else 422, str(err))
        except NotAllowed as err:
            return json_error(403, str(err))
        except DomainError as err:
            return json_error(422, str(err))
        except web.HTTPException as err:
            if request.path.startswith("/api/") and err.status >= 400:
                return json_error(err.status, err.reason)
            raise

    @web.middleware
    async def bearer_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/api/") and request.path not in PUBLIC_API_PATHS:
            given = request.headers.get("Authorization", "").encode()
            if not secrets.compare_digest(given, expected):
                return json_error(401, "missing or wrong bearer token in the Authorization header")
        return await handler(request)

    return [errors, bearer_auth]


async def read_json(request: web.Request) -> Any:
    try:
        return json.loads(await request.read())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ApiError(400, f"body is not valid JSON: {err}") from err
    except RecursionError as err:  # e.g. 100k nested arrays: the decoder gives up, the request is refused
        raise ApiError(400, "body is not valid JSON: nested too deeply") from err


def _nul_at(data: Any) -> str | None:
    """Where a string holds NUL (PostgreSQL text cannot store it), as a field path; None if nowhere."""
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return path or "body"
            continue
        pairs = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for key, item in pairs:
            if isinstance(key, str) and "\x00" in key:
                return path or "body"
            stack.append((f"{path}.{key}" if path else str(key), item))
    return None


def validate(model: type[M], data: Any) -> M:
    """Validate a decoded body; a failure names the field: {"error": "lines.0.qty: ..."}."""
    if (where := _nul_at(data)) is not None:
        raise ApiError(422, f"{where}: must not contain NUL characters")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        raise ApiError(422, f"{field}: {first['msg']}") from err


async def read_body(request: web.Request, model: type[M]) -> M:
    return validate(model, await read_json(request))


def query_param(request: web.Request, name: str, *, required: bool = False) -> str | None:
    """A text parameter; one no code or name could be (NUL, too long) is refused here, before any query."""
    value = request.query.get(name)
    if required and not value:
        raise ApiError(400, f"query parameter {name!r} is required")
    if value and ("\x00" in value or len(value) > MAX_PARAM_CHARS):
        raise ApiError(400, f"{name}: not a valid value (at most {MAX_PARAM_CHARS} characters, no NUL)")
    return value or None


def whole_number(raw: str | None, name: str, *, lo: int, hi: int) -> int:
    """Plain ASCII digits within lo..hi (never int() of "²" or of 5,000 digits), or a 400 naming the field."""
    if raw is None or not raw.isascii() or not raw.isdigit() or len(raw) > len(str(hi)) or not lo <= int(raw) <= hi:
        raise ApiError(400, f"{name}: must be a whole number from {lo} to {hi}")
    return int(raw)


def int_param(request: web.Request, name: str, *, default: int, lo: int, hi: int) -> int:
    raw = query_param(request, name)
    return default if raw is None else whole_number(raw, name, lo=lo, hi=hi)


def path_id(request: web.Request, name: str = "id", *, kind: str | None = None) -> int:
    """A row id from the path: 1..2**31-1 (PostgreSQL INTEGER), else 400 naming it. With kind, a path that is no
    number at all ("abc", "²") answers 404 "No <kind> by the id of ..." as a missing row does."""
    raw = request.match_info[name]
    if kind is not None and not (raw.isascii() and raw.isdigit()):
        raise ApiError(404, f"No {kind} by the id of {raw[:40]!r} was found")
    return whole_number(raw, name, lo=1, hi=DB_ID_MAX)


def date_param(request: web.Request, name: str, default: date) -> date:
    """An ISO date within DATE_MIN..DATE_MAX: dates at the ends of the calendar overflow the arithmetic after."""
    raw = query_param(request, name)
    if raw is None:
        return default
    try:
        day = date.fromisoformat(raw)
    except ValueError as err:
        raise ApiError(400, f"{name}: expected a date like 2026-11-24") from err
    if not DATE_MIN <= day <= DATE_MAX:
        raise ApiError(400, f"{name}: must be between {DATE_MIN} and {DATE_MAX}")
    return day


def setup_routes(app: web.Application) -> None:
    # Lazy: every route module imports this package's plumbing (ApiError, date_param) at its top.
    from bot.api import alerts, customer_board, dashboard, health, outbox, pos, stock, store_metrics, tasks, transfers
    from bot.api import campaigns as campaigns_api
    from bot.api import customers as customers_api
    from bot.api import segments as segments_api

    for module in (health, stock, pos, alerts, store_metrics, transfers, tasks, outbox, dashboard):
        app.router.add_routes(module.routes)
    for loop in (customers_api, segments_api, campaigns_api, customer_board):  # the customer loop (issue 13)
        app.router.add_routes(loop.routes)
