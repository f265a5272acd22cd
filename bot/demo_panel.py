"""The demo panel on the dashboard: POS sale and task forms that call the bot's own API, only under `storebot demo`.

`bot/demo.py` sets `app[DEMO_PANEL]` and adds these routes; a production app has neither, so the panel is not
shown and its form endpoints do not exist there. The forms go through the real endpoints over HTTP (a signed
`POST /api/pos/sales`, a bearer `POST /api/tasks/run`), exactly what a POS or an operator would send.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web

from bot.api.dashboard import authorised
from bot.demo_data import STAFF, STORES, WalkStep, demo_skus, sale_defaults, transfer_walkthrough
from bot.keys import CLOCK, HTTP, SETTINGS

routes = web.RouteTableDef()
LOG_SIZE = 10


@dataclass
class DemoPanel:
    """What the panel needs: where the bot and the phone page answer, and what the forms did so far."""

    self_url: str  # the bot's own base URL, for the forms' calls to its API
    phone_url: str
    log: deque[dict[str, str]] = field(default_factory=lambda: deque(maxlen=LOG_SIZE))

    def note(self, ok: bool, text: str, now: str) -> None:
        self.log.appendleft({"ok": "1" if ok else "", "text": text, "at": now})


DEMO_PANEL = web.AppKey("demo_panel", DemoPanel)


def install(app: web.Application, panel: DemoPanel) -> None:
    """Turn the panel on for this app (the demo only)."""
    app[DEMO_PANEL] = panel
    app.router.add_routes(routes)


def context(app: web.Application, panel: DemoPanel) -> dict[str, Any]:
    """What templates/dashboard/demo_panel.html shows."""
    store, sku, qty = sale_defaults()
    settings = app[SETTINGS]
    steps: list[WalkStep] = transfer_walkthrough()
    return {
        "phone_url": panel.phone_url, "stores": [(code, v[0]) for code, v in STORES.items()],
        "sale": {"store": store, "sku": sku, "qty": qty}, "templates": [(t.key, t.title) for t in settings.tasks],
        "digest_seconds": settings.alerts.digest_seconds, "log": list(panel.log), "transfer": steps,
        "manager": next(n for n, r, s, _ in STAFF.values() if r == "manager" and s == store),
    }


def _panel(request: web.Request) -> DemoPanel:
    panel = request.app.get(DEMO_PANEL)
    if panel is None:
        raise web.HTTPNotFound()
    allowed, _ = authorised(request)
    if not allowed:
        raise web.HTTPUnauthorized(text="需要管理员口令：先用带 ?token= 的链接打开看板。")
    return panel


def _now(request: web.Request) -> str:
    return request.app[CLOCK].now().astimezone(ZoneInfo("Asia/Shanghai")).strftime("%H:%M:%S")


def _back() -> web.HTTPSeeOther:
    return web.HTTPSeeOther("/dashboard#demo")


async def _call(request: web.Request, method: str, path: str, body: Any = None, *,
                sign: bool = False) -> tuple[int, Any]:
    """One request to the bot's own API: signed like a POS when `sign`, else with the admin bearer token."""
    settings = request.app[SETTINGS]
    headers = {"Content-Type": "application/json"}
    raw = json.dumps(body, ensure_ascii=False).encode() if body is not None else None
    if sign:
        secret = settings.pos.webhook_secret.get_secret_value().encode()
        headers["X-Storebot-Signature"] = "sha256=" + hmac.new(secret, raw or b"", hashlib.sha256).hexdigest()
    else:
        headers["Authorization"] = f"Bearer {settings.server.admin_token.get_secret_value()}"
    url = request.app[DEMO_PANEL].self_url.rstrip("/") + path
    try:
        async with request.app[HTTP].request(method, url, data=raw, headers=headers) as r:
            return r.status, await r.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as err:
        return 0, {"error": f"{type(err).__name__}: {err}"}


def _error(answer: Any) -> str:
    return str(answer.get("error", answer)) if isinstance(answer, dict) else str(answer)


@routes.post("/dashboard/demo/sale")
async def demo_sale(request: web.Request) -> web.Response:
    """模拟收银: one signed sale of one line, with a fresh sale_id, to POST /api/pos/sales."""
    panel = _panel(request)
    form = await request.post()
    store, sku = str(form.get("store", "")).strip().upper(), str(form.get("sku", "")).strip().upper()
    qty_text = str(form.get("qty", "")).strip()
    if not store or not sku or not re.fullmatch(r"[0-9]{1,6}", qty_text) or int(qty_text) < 1:  # not "²"
        panel.note(False, "请填写门店、商品编码和数量（正整数）。", _now(request))
        raise _back()
    qty = int(qty_text)
    prices = {s.code: float(s.price) for s in demo_skus()}
    sale = {
        "sale_id": f"demo-{uuid.uuid4().hex[:12]}", "store": store,
        "sold_at": request.app[CLOCK].now().isoformat(),
        "lines": [{"sku": sku, "qty": qty, "unit_price": prices.get(sku, 0.0)}],
    }
    status, answer = await _call(request, "POST", "/api/pos/sales", sale, sign=True)
    if status != 200:
        panel.note(False, f"收银失败（HTTP {status}）：{_error(answer)}", _now(request))
        raise _back()
    _, level = await _call(request, "GET", f"/api/stock?store={store}&sku={sku}")
    text = f"{store} 卖出 {sku} × {qty}（单号 {sale['sale_id']}）"
    if isinstance(level, dict) and "on_hand" in level:
        on_hand, safety = level["on_hand"], level["safety_stock"]
        text += f"，现有 {on_hand}，安全线 {safety}"
        if on_hand < safety:
            text += "：已低于安全线，店长将在汇总窗口结束后收到「库存提醒汇总」卡片（在手机页面查看）。"
    panel.note(True, text, _now(request))
    raise _back()


@routes.post("/dashboard/demo/task")
async def demo_task(request: web.Request) -> web.Response:
    """立即推送任务: POST /api/tasks/run for the chosen template and stores, then name who got the card."""
    panel = _panel(request)
    form = await request.post()
    template = str(form.get("template", "")).strip()
    stores = [str(s).strip().upper() for s in form.getall("stores", []) if str(s).strip()]
    if not template or not stores:
        panel.note(False, "请选择任务模板和至少一个门店。", _now(request))
        raise _back()
    status, answer = await _call(request, "POST", "/api/tasks/run", {"template": template, "stores": stores})
    if status != 200 or not isinstance(answer, dict):
        panel.note(False, f"推送失败（HTTP {status}）：{_error(answer)}", _now(request))
        raise _back()
    settings = request.app[SETTINGS]
    tpl = settings.template(template)
    title = tpl.title if tpl else template
    ids = set(answer.get("tasks", []))
    if not ids:
        panel.note(True, f"「{title}」本期任务在 {'、'.join(stores)} 已经推送过，没有重复创建。", _now(request))
        raise _back()
    people = []
    for store in stores:
        _, rows = await _call(request, "GET", f"/api/tasks?store={store}")
        people += [f"{r['assignee_name']}（{r['assignee']}）" for r in rows if isinstance(r, dict) and r["id"] in ids]
    how = {"photo": "点「拍照」发送示例照片即可完成", "count": "按卡片清单回复「盘点 商品编码 数量」"}
    next_step = how.get(tpl.proof if tpl else "", "点卡片上的按钮完成")
    panel.note(True, f"「{title}」已推送 {len(ids)} 个任务，收到卡片的是：{'、'.join(people)}。"
               f"在手机页面切换到该用户查看，{next_step}。", _now(request))
    raise _back()
