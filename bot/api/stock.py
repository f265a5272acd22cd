"""/api/stock: on-hand and safety line per store and SKU; the app menu's scan buttons (menu/create at start)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from sqlalchemy import select

from bot.api import query_param
from bot.errors import UnknownEntity, WeComError
from bot.keys import MENU_TASK, SESSIONS, SETTINGS, WECOM
from models.catalog import find_sku
from models.org import store_by_code
from models.stock import StockLevel
from models.transfer import in_transit

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

# key -> button name; handlers/stock.py answers the ScanCode events these keys send
SCAN_BUTTONS = {"scan_in": "扫码入库", "scan_out": "扫码出库", "scan_count": "扫码盘点"}


def scan_menu() -> dict[str, Any]:
    """The app menu (menu/create body): one "库存" entry holding the three scancode_waitmsg buttons."""
    return {"button": [{"name": "库存", "sub_button": [
        {"type": "scancode_waitmsg", "name": name, "key": key} for key, name in SCAN_BUTTONS.items()
    ]}]}


async def menu_ctx(app: web.Application) -> AsyncIterator[None]:
    """With wecom.create_menu, create the menu in the background at start; a failure is logged, never fatal."""
    if not app[SETTINGS].wecom.create_menu:
        yield
        return

    async def create() -> None:
        try:
            await app[WECOM].create_menu(scan_menu())
            log.info("app menu created")
        except WeComError as err:
            log.warning("could not create the app menu: %s", err)

    task = app[MENU_TASK] = asyncio.create_task(create())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


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
        moving = await in_transit(session, store.id, sku.id)
    return web.json_response(
        {
            "store": store.code,
            "sku": sku.code,
            "on_hand": level.on_hand if level else 0,
            "safety_stock": level.safety_stock if level else 0,
            "in_transit": moving,  # shipped to this store by a transfer, not yet received
        }
    )
