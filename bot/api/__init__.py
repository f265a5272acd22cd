"""HTTP API plumbing: bearer auth on /api/*, JSON errors, body validation, and the route tables."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.typedefs import Middleware
from pydantic import BaseModel, ValidationError

from bot.errors import DomainError, NotAllowed, UnknownEntity

log = logging.getLogger(__name__)

# Paths under /api/ that authenticate themselves (the POS webhook signs its body instead).
PUBLIC_API_PATHS = frozenset({"/api/pos/sales"})

M = TypeVar("M", bound=BaseModel)
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


def validate(model: type[M], data: Any) -> M:
    """Validate a decoded body; a failure names the field: {"error": "lines.0.qty: ..."}."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        raise ApiError(422, f"{field}: {first['msg']}") from err


async def read_body(request: web.Request, model: type[M]) -> M:
    return validate(model, await read_json(request))


def query_param(request: web.Request, name: str, *, required: bool = False) -> str | None:
    value = request.query.get(name)
    if required and not value:
        raise ApiError(400, f"query parameter {name!r} is required")
    return value or None


def setup_routes(app: web.Application) -> None:
    from bot.api import alerts, customer_board, dashboard, health, outbox, pos, stock, store_metrics, tasks, transfers
    from bot.api import campaigns as campaigns_api
    from bot.api import customers as customers_api
    from bot.api import segments as segments_api

    for module in (health, stock, pos, alerts, store_metrics, transfers, tasks, outbox, dashboard):
        app.router.add_routes(module.routes)
    for loop in (customers_api, segments_api, campaigns_api, customer_board):  # the customer loop (issue 13)
        app.router.add_routes(loop.routes)
