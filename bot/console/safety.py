"""Safety stock in the console: one store×SKU at a time, or a whole file (CSV/XLSX) applied in batches by a
background task whose progress the page polls. A person edits only the stores they look after."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from sqlalchemy import or_, select

from bot.console.pages import render
from bot.console.safety_file import read_safety_file
from bot.console.session import check_csrf, require_viewer
from bot.console.settings_pages import may_edit_safety, write_lock
from bot.keys import CLOCK, SESSIONS
from models.catalog import Sku
from models.console_settings import SAFETY_MAX, SettingInvalid, set_safety_stock
from models.org import Store
from models.safety_import import SafetyImport, SafetyRow, apply_batch
from models.stock import StockLevel
from models.viewer import Viewer

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
IMPORTS: web.AppKey[set[asyncio.Task[None]]] = web.AppKey("console_imports")
BATCH = 500
LIST_LIMIT = 50
MAX_UPLOAD = 4 * 1024 * 1024  # the app's client_max_size


async def imports_ctx(app: web.Application) -> AsyncIterator[None]:
    """Imports still running at shutdown are cancelled (each batch is its own transaction: nothing half-done)."""
    running: set[asyncio.Task[None]] = set()
    app[IMPORTS] = running
    yield
    for task in list(running):
        task.cancel()
    for task in list(running):
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _stores(request: web.Request, viewer: Viewer) -> list[Store]:
    async with request.app[SESSIONS]() as session:
        stores = (await session.execute(select(Store).order_by(Store.code))).scalars().all()
    return [s for s in stores if viewer.sees(s.id)]


def _forbidden_role() -> web.HTTPForbidden:
    return web.HTTPForbidden(text="只有店长、督导和总部可以修改安全库存。", content_type="text/plain")


@routes.get("/console/settings/safety")
async def safety_page(request: web.Request) -> web.StreamResponse:
    viewer = await require_viewer(request)
    return await _page(request, viewer)


async def _page(request: web.Request, viewer: Viewer, *, error: str = "", status: int = 200,
                saved: str = "") -> web.Response:
    stores = await _stores(request, viewer)
    code = (request.query.get("store") or (stores[0].code if stores else ""))[:64]
    store = next((s for s in stores if s.code == code), None)
    q = (request.query.get("q") or "").strip()[:64]
    rows: list[dict[str, Any]] = []
    if store is not None:
        stmt = (select(Sku.code, Sku.name, StockLevel.on_hand, StockLevel.safety_stock)
                .outerjoin(StockLevel, (StockLevel.sku_id == Sku.id) & (StockLevel.store_id == store.id))
                .order_by(Sku.code).limit(LIST_LIMIT))
        if q:
            stmt = stmt.where(or_(Sku.code.contains(q, autoescape=True), Sku.name.contains(q, autoescape=True)))
        async with request.app[SESSIONS]() as session:
            rows = [{"code": c, "name": n, "on_hand": h or 0, "safety": s or 0}
                    for c, n, h, s in await session.execute(stmt)]
    return render(request, viewer, "safety.html", status=status, title="安全库存", stores=stores, store=store,
                  rows=rows, q=q, can_edit=may_edit_safety(viewer), error=error, limit=LIST_LIMIT,
                  saved=saved or ("已保存，立即生效。" if request.query.get("saved") else ""), max=SAFETY_MAX)


@routes.post("/console/settings/safety")
async def save_one(request: web.Request) -> web.StreamResponse:
    viewer = await require_viewer(request)
    form = await request.post()
    check_csrf(request, str(form.get("csrf", "")))
    if not may_edit_safety(viewer):
        raise _forbidden_role()
    store_code, sku_code, raw = (str(form.get(k, "")).strip()[:64] for k in ("store", "sku", "value"))
    async with request.app[SESSIONS]() as session:
        store = (await session.execute(select(Store).where(Store.code == store_code))).scalar_one_or_none()
        sku = (await session.execute(select(Sku).where(Sku.code == sku_code))).scalar_one_or_none()
    if store is None or not viewer.sees(store.id):
        raise web.HTTPForbidden(text=f"你不能修改门店 {store_code} 的安全库存。", content_type="text/plain")
    if sku is None:
        return await _page(request, viewer, status=422, error=f"没有商品 {sku_code}。")
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 7 and int(raw) <= SAFETY_MAX):
        return await _page(request, viewer, status=422, error=f"安全库存要填 0 到 {SAFETY_MAX} 的整数。")
    try:
        async with write_lock(request.app), request.app[SESSIONS]() as session, session.begin():
            await set_safety_stock(session, store_id=store.id, sku_id=sku.id, value=int(raw),
                                   scope=f"{store.code} {sku.code}", userid=viewer.userid, person=viewer.name,
                                   now=request.app[CLOCK].now())
    except SettingInvalid as err:
        return await _page(request, viewer, status=422, error=str(err))
    raise web.HTTPFound(f"/console/settings/safety?store={store.code}&saved=1")


@routes.post("/console/settings/safety/upload")
async def upload(request: web.Request) -> web.StreamResponse:
    """A file of store, SKU, safety stock: checked whole first (nothing applied if any line is wrong), then
    applied in the background; answers {"job": id} for the progress bar or {"errors": [...]}."""
    viewer = await require_viewer(request)
    form = await request.post()
    check_csrf(request, str(form.get("csrf", "")))
    if not may_edit_safety(viewer):
        raise _forbidden_role()
    file = form.get("file")
    if not isinstance(file, web.FileField):
        return web.json_response({"errors": ["请选择要上传的文件。"]}, status=422)
    filename = (file.filename or "upload.csv")[-160:]
    data = await asyncio.to_thread(file.file.read, MAX_UPLOAD + 1)
    parsed = await asyncio.to_thread(read_safety_file, filename, data)
    errors = list(parsed.errors)
    async with request.app[SESSIONS]() as session:
        stores = {str(c): int(i) for c, i in await session.execute(select(Store.code, Store.id))}
        skus = {str(c): int(i) for c, i in await session.execute(select(Sku.code, Sku.id))}
    rows: list[SafetyRow] = []
    for line in parsed.lines:
        store_id, sku_id = stores.get(line.store), skus.get(line.sku)
        if store_id is None or sku_id is None:
            what = f"门店 {line.store}" if store_id is None else f"商品 {line.sku}"
            errors.append(f"第 {line.line} 行：没有{what}。")
        elif not viewer.sees(store_id):
            errors.append(f"第 {line.line} 行：你不能修改门店 {line.store} 的安全库存。")
        else:
            rows.append(SafetyRow(store_id, sku_id, line.value, f"{line.store} {line.sku}"))
        if len(errors) >= 20:
            break
    if errors:
        return web.json_response({"errors": errors[:20]}, status=422)
    async with write_lock(request.app), request.app[SESSIONS]() as session, session.begin():
        job = SafetyImport(userid=viewer.userid, filename=filename, total=len(rows), done=0, changed=0,
                           state="running", message="", created_at=request.app[CLOCK].now())
        session.add(job)
        await session.flush()
        job_id = job.id
    task = asyncio.create_task(_run(request.app, job_id, rows, viewer.name), name=f"safety-import-{job_id}")
    request.app[IMPORTS].add(task)
    task.add_done_callback(request.app[IMPORTS].discard)
    return web.json_response({"job": job_id, "total": len(rows)})


async def _run(app: web.Application, job_id: int, rows: list[SafetyRow], person: str) -> None:
    sessions, clock = app[SESSIONS], app[CLOCK]
    try:
        for start in range(0, len(rows), BATCH):
            async with write_lock(app), sessions() as session, session.begin():
                job = await session.get(SafetyImport, job_id)
                assert job is not None
                await apply_batch(session, job, rows[start:start + BATCH], person=person, now=clock.now())
        async with sessions() as session, session.begin():
            job = await session.get(SafetyImport, job_id)
            assert job is not None
            job.state, job.finished_at = "done", clock.now()
    except Exception as err:
        log.exception("safety stock import %d failed", job_id)
        async with sessions() as session, session.begin():
            job = await session.get(SafetyImport, job_id)
            if job is not None:
                job.state, job.finished_at = "failed", clock.now()
                job.message = f"导入中断：{type(err).__name__}。已完成的部分已生效，请重新上传剩下的行。"


@routes.get("/console/settings/safety/jobs/{id}")
async def job_status(request: web.Request) -> web.StreamResponse:
    viewer = await require_viewer(request)
    raw = request.match_info["id"]
    job = None
    if raw.isascii() and raw.isdigit() and len(raw) < 10:
        async with request.app[SESSIONS]() as session:
            job = await session.get(SafetyImport, int(raw))
    if job is None or (job.userid != viewer.userid and viewer.role != "admin"):
        return web.json_response({"error": "没有这个导入任务。"}, status=404)
    return web.json_response({"job": job.id, "state": job.state, "total": job.total, "done": job.done,
                              "changed": job.changed, "message": job.message})
