"""/api/stock: on-hand and safety line per store and SKU."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import select

from bot.api import query_param
from bot.errors import UnknownEntity
from bot.keys import SESSIONS
from models.catalog import find_sku
from models.org import store_by_code
from models.stock import StockLevel

routes = web.RouteTableDef()


@routes.get("/api/stock")
async def get_stock(request: web.Request) -> web.Response:
    store_code = query_param(request, "store", required=True)
    sku_code = query_param(request, "sku", required=True)
    assert store_code is not None and sku_code is not None
    async with request.app[SESSIONS]() as session:
        store = await store_by_code(session, store_code)
        if store is None:
            raise UnknownEntity("store", store_code)
        sku = await find_sku(session, sku_code)
        if sku is None:
            raise UnknownEntity("sku", sku_code)
        level = (
            await session.execute(
                select(StockLevel).where(StockLevel.store_id == store.id, StockLevel.sku_id == sku.id)
            )
        ).scalar_one_or_none()
    return web.json_response(
        {
            "store": store.code,
            "sku": sku.code,
            "on_hand": level.on_hand if level else 0,
            "safety_stock": level.safety_stock if level else 0,
        }
    )
