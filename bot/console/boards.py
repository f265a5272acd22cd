"""The boards under /console (库存 任务 调拨 人员 成效 客户), their CSV/XLSX exports, the photo review and the
vendored ECharts. Every page and export goes through `_prepared`: the viewer's scope, the filters (a bad value
answers 400 saying what to change) and the stores they select (a store outside the scope answers 403)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.console import board_tables as tables
from bot.console import charts
from bot.console.exports import Table, to_csv, to_xlsx
from bot.console.pages import render
from bot.console.session import check_csrf, require_viewer
from bot.keys import CLOCK, DEPS, SESSIONS
from models.boards import customers, effect, inventory, people, tasks, transfers
from models.boards.filters import (
    BOARD_TZ,
    DEFAULT_RANGE_DAYS,
    FilterError,
    Filters,
    OutOfScope,
    Selection,
    categories,
    parse_filters,
)
from models.boards.filters import select_stores as _select_stores
from models.org import Region, Store
from models.photo_review import review_photo
from models.viewer import Viewer

routes = web.RouteTableDef()
VENDOR = Path(__file__).parent / "vendor" / "echarts-5.6.0"
ECHARTS_URL = "/console/static/echarts-5.6.0/echarts.min.js"
REVIEWERS = ("manager", "supervisor", "admin")
LONG_RANGE_DAYS = 180  # effect and customers look at months


@dataclass
class Prepared:
    viewer: Viewer
    filters: Filters
    sel: Selection
    session: AsyncSession
    now: datetime
    names: dict[int, str]  # every store's name (a transfer's other store may lie outside the scope)


def fmt(at: datetime | None, pattern: str = "%m-%d %H:%M") -> str:
    return at.astimezone(BOARD_TZ).strftime(pattern) if at is not None else ""


def pct(value: float | None) -> str:
    return f"{value * 100:.1f}%" if value is not None else "—"


async def _prepared(
    request: web.Request, viewer: Viewer, session: AsyncSession, *, long_range: bool = False
) -> Prepared:
    now = request.app[CLOCK].now()
    today = now.astimezone(BOARD_TZ).date()
    filters = parse_filters(request.query, today, default_days=LONG_RANGE_DAYS if long_range else DEFAULT_RANGE_DAYS)
    sel = await _select_stores(session, viewer.store_ids, filters)
    names = dict((await session.execute(select(Store.id, Store.name))).all())
    return Prepared(viewer, filters, sel, session, now, names)


async def _form(p: Prepared) -> dict[str, Any]:
    """The filter bar: the regions and stores this viewer may pick, and the catalogue's categories."""
    visible = await _select_stores(p.session, p.viewer.store_ids, Filters())
    regions = dict((await p.session.execute(select(Region.code, Region.name))).all())
    return {"f": p.filters, "stores_all": visible.stores, "categories": await categories(p.session),
            "regions": sorted({(s.region_code, regions.get(s.region_code, s.region_code)) for s in visible.stores}),
            "fmt": fmt, "pct": pct, "names": p.names, "echarts_url": ECHARTS_URL}


Page = Callable[[web.Request, Prepared], Awaitable[dict[str, Any]]]


def board_page(
    path: str, template: str, title: str, *, export: str | None = None, long_range: bool = False
) -> Callable[[Page], Page]:
    def register(build: Page) -> Page:
        async def handler(request: web.Request) -> web.StreamResponse:
            viewer = await require_viewer(request)
            try:
                async with request.app[SESSIONS]() as session:
                    p = await _prepared(request, viewer, session, long_range=long_range)
                    context = await build(request, p)
                    context.update(await _form(p))
            except FilterError as err:
                return render(request, viewer, "board_problem.html", status=400, title=title, message=err.message,
                              back=path)
            except OutOfScope:
                return render(request, viewer, "board_problem.html", status=403, title=title, back=path,
                              message="这家门店或这个区域不在你的查看范围内。请从筛选栏里选你负责的门店。")
            context["export_query"] = urlencode(p.filters.query())
            context["export_name"] = export
            return render(request, viewer, template, title=title, board_path=path, **context)

        routes.get(path)(handler)
        return build

    return register


@board_page("/console/inventory", "board_inventory.html", "库存", export="inventory")
async def inventory_page(request: web.Request, p: Prepared) -> dict[str, Any]:
    rules = request.app[DEPS].config.rules
    board = await inventory.inventory_board(p.session, p.sel, p.filters, now=p.now,
                                            no_movement_days=rules.no_movement_days,
                                            tolerance=rules.accuracy_tolerance_units)
    return {"board": board, "kind_names": inventory.KIND_NAMES, "days": p.filters.days or rules.no_movement_days,
            "chart": charts.accuracy(board.accuracy, p.names, p.filters)}


@board_page("/console/tasks", "board_tasks.html", "任务", export="tasks")
async def tasks_page(request: web.Request, p: Prepared) -> dict[str, Any]:
    board = await tasks.tasks_board(p.session, p.sel, p.filters)
    return {"board": board, "chart": charts.task_days(board.days, p.filters), "decision_name": tables.decision_name,
            "can_review": p.viewer.role in REVIEWERS, "back": request.path_qs}


@board_page("/console/transfers", "board_transfers.html", "调拨", export="transfers")
async def transfers_page(request: web.Request, p: Prepared) -> dict[str, Any]:
    hours = request.app[DEPS].config.rules.transfer_receipt_timeout_hours
    board = await transfers.transfers_board(p.session, p.sel, p.filters, now=p.now, receipt_hours=hours)
    return {"board": board, "section_names": transfers.SECTION_NAMES, "receipt_hours": hours}


def _month(p: Prepared) -> str:
    return p.filters.month or p.now.astimezone(BOARD_TZ).strftime("%Y-%m")


@board_page("/console/people", "board_people.html", "人员", export="leaderboard")
async def people_page(request: web.Request, p: Prepared) -> dict[str, Any]:
    month = _month(p)
    lines = await people.leaderboard_lines(p.session, p.sel, month)
    return {"lines": lines, "month": month, "chart": charts.points(lines)}


@board_page("/console/effect", "board_effect.html", "成效", export="effect", long_range=True)
async def effect_page(request: web.Request, p: Prepared) -> dict[str, Any]:
    board = await effect.effect_board(p.session, p.sel, p.filters,
                                      tolerance=request.app[DEPS].config.rules.accuracy_tolerance_units)
    return {"board": board, "metric_names": effect.METRIC_NAMES,
            "charts": {m: charts.effect(board, m, p.names, p.filters) for m in effect.METRICS}}


@board_page("/console/customers", "board_customers.html", "客户", long_range=True)
async def customers_page(request: web.Request, p: Prepared) -> dict[str, Any]:
    wide = p.viewer.role in ("admin", "supervisor")
    board = await customers.customers_board(p.session, p.sel, p.filters, now=p.now,
                                            cfg=request.app[DEPS].config.customers, with_campaigns=wide)
    return {"board": board, "stage_names": customers.STAGE_NAMES, "wide": wide,
            "chart": charts.customers(board), "stage_chart": charts.stage_days(board, p.filters)}


async def _export_table(request: web.Request, name: str, p: Prepared) -> Table:
    rules = request.app[DEPS].config.rules  # the settings in effect (console edits included), not the seed
    if name == "inventory":
        board = await inventory.inventory_board(p.session, p.sel, p.filters, now=p.now,
                                                no_movement_days=rules.no_movement_days,
                                                tolerance=rules.accuracy_tolerance_units, limit=100_000)
        return tables.inventory_table(board, p.names)
    if name == "tasks":
        return tables.tasks_table(await tasks.tasks_board(p.session, p.sel, p.filters), p.names)
    if name == "transfers":
        return tables.transfers_table(await transfers.transfers_board(
            p.session, p.sel, p.filters, now=p.now, receipt_hours=rules.transfer_receipt_timeout_hours), p.names)
    if name == "leaderboard":
        month = _month(p)
        return tables.leaderboard_table(await people.leaderboard_lines(p.session, p.sel, month), month)
    board_e = await effect.effect_board(p.session, p.sel, p.filters, tolerance=rules.accuracy_tolerance_units)
    return tables.effect_table(board_e, p.names)


@routes.get(r"/console/export/{board:[a-z]+}.{fmt:csv|xlsx}")
async def export(request: web.Request) -> web.StreamResponse:
    viewer = await require_viewer(request)  # 401 without a session
    name, kind = request.match_info["board"], request.match_info["fmt"]
    if name not in tables.EXPORTS:
        raise web.HTTPNotFound(text=f"没有「{name}」这个导出，可导出：{'、'.join(tables.EXPORTS)}。")
    try:
        async with request.app[SESSIONS]() as session:
            p = await _prepared(request, viewer, session, long_range=name == "effect")
            table = await _export_table(request, name, p)
    except FilterError as err:
        raise web.HTTPBadRequest(text=err.message) from err
    except OutOfScope as err:
        raise web.HTTPForbidden(text="这家门店或这个区域不在你的查看范围内。") from err
    stem = f"{name}-{p.filters.date_from}-{p.filters.date_to}"
    if kind == "csv":
        body, ctype = to_csv(table), "text/csv; charset=utf-8"
    else:
        body, ctype = to_xlsx(table), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    return web.Response(body=body, headers={"Content-Type": ctype, "Cache-Control": "no-store",
                                            "Content-Disposition": f'attachment; filename="{stem}.{kind}"'})


def _photo_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9):
        raise web.HTTPNotFound(text="没有这张照片。")
    return int(raw)


async def _photo_in_scope(request: web.Request, viewer: Viewer) -> tuple[int, str | None]:
    photo_id = _photo_id(request)
    async with request.app[SESSIONS]() as session:
        found = await tasks.photo_store(session, photo_id)
    if found is None:
        raise web.HTTPNotFound(text="没有这张照片。")
    store_id, path = found
    if not (viewer.store_ids is None or (store_id is not None and viewer.sees(store_id))):
        raise web.HTTPForbidden(text="这张照片不在你的查看范围内。")
    return photo_id, path


@routes.get(r"/console/photos/{id}.jpg")
async def photo_file(request: web.Request) -> web.StreamResponse:
    viewer = await require_viewer(request)
    _, path = await _photo_in_scope(request, viewer)
    file = await asyncio.to_thread(_stored_file, request.app[DEPS].data_dir, path) if path else None
    if file is None:
        raise web.HTTPNotFound(text="照片文件还没下载好或已清理。")
    return web.FileResponse(file, headers={"Cache-Control": "private, max-age=3600"})


def _stored_file(data_dir: Path, relative: str) -> Path | None:
    """A file under data_dir (never outside it), if it is there."""
    root = data_dir.resolve()
    file = (root / relative).resolve()
    return file if file.is_relative_to(root) and file.is_file() else None


@routes.post(r"/console/photos/{id}/review")
async def photo_review(request: web.Request) -> web.StreamResponse:
    viewer = await require_viewer(request)
    form = await request.post()
    csrf, decision, back = (str(form.get(k, "")) for k in ("csrf", "decision", "back"))
    check_csrf(request, csrf)
    if viewer.role not in REVIEWERS:
        raise web.HTTPForbidden(text="只有店长、督导和总部可以审核照片。")
    photo_id, _ = await _photo_in_scope(request, viewer)
    if decision not in ("accepted", "rejected"):
        raise web.HTTPBadRequest(text="请选择「通过」或「退回」。")
    async with request.app[SESSIONS]() as session, session.begin():
        await review_photo(session, photo_id, decision, by=viewer.userid, at=request.app[CLOCK].now())
    target = back if back.startswith("/console/tasks") and "\n" not in back and "\r" not in back else "/console/tasks"
    raise web.HTTPSeeOther(f"{target}#photo-{photo_id}")


@routes.get("/console/static/echarts-5.6.0/{name}")
async def vendored(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in ("echarts.min.js", "LICENSE", "NOTICE", "SOURCE.txt"):
        raise web.HTTPNotFound()
    ctype = "application/javascript" if name.endswith(".js") else "text/plain"
    return web.FileResponse(VENDOR / name, headers={"Content-Type": f"{ctype}; charset=utf-8",
                                                     "Cache-Control": "public, max-age=86400"})


