"""The demo panel on the dashboard: POS sale and task forms that call the bot's own API, only under `storebot demo`.

`bot/demo/run.py` sets `app[DEMO_PANEL]` and adds these routes; a production app has neither, so the panel is not
shown and its form endpoints do not exist there. The forms go through the real endpoints over HTTP (a signed
`POST /api/pos/sales`, a bearer `POST /api/tasks/run`), exactly what a POS or an operator would send.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import re
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web

from bot.api.dashboard import authorised
from bot.clock import ShiftedClock, SystemClock
from bot.demo.clock import advance_clock
from bot.demo.data import STAFF, STORES, WalkStep, demo_skus, sale_defaults, transfer_walkthrough
from bot.keys import CLOCK, DASHBOARD_DEMO, DEMO_PANEL, DEPS, HTTP, SETTINGS

routes = web.RouteTableDef()
LOG_SIZE = 10
DEMO_TZ = ZoneInfo("Asia/Shanghai")  # every demo store's zone
MORNING_HOUR = 8


@dataclass
class DemoPanel:
    """What the panel needs: where the bot and the phone page answer, and what the forms did so far."""

    self_url: str  # the bot's own base URL, for the forms' calls to its API
    phone_url: str
    clock: ShiftedClock = field(default_factory=lambda: ShiftedClock(SystemClock()))  # the demo's movable time
    log: deque[dict[str, str]] = field(default_factory=lambda: deque(maxlen=LOG_SIZE))
    jump: asyncio.Task[None] | None = None  # a clock jump replaying the skipped jobs; one at a time

    def note(self, ok: bool, text: str, now: str) -> None:
        self.log.appendleft({"ok": "1" if ok else "", "text": text, "at": now})




def install(app: web.Application, panel: DemoPanel) -> None:
    """Turn the panel on for this app (the demo only)."""
    app[DEMO_PANEL] = panel
    app[DASHBOARD_DEMO] = lambda a: context(a, panel)
    app.router.add_routes(routes)
    app.on_shutdown.append(_stop_jump)


async def _stop_jump(app: web.Application) -> None:
    """A jump still replaying jobs is cancelled and awaited, so no database work outlives the engine."""
    task = app[DEMO_PANEL].jump
    if task is not None and not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def context(app: web.Application, panel: DemoPanel) -> dict[str, Any]:
    """What templates/dashboard/demo_panel.html shows."""
    store, sku, qty = sale_defaults()
    settings = app[DEPS].config  # with the console's edits (task templates)
    steps: list[WalkStep] = transfer_walkthrough()
    return {
        "phone_url": panel.phone_url, "stores": [(code, v[0]) for code, v in STORES.items()],
        "sale": {"store": store, "sku": sku, "qty": qty}, "templates": [(t.key, t.title) for t in settings.tasks],
        "digest_seconds": settings.alerts.digest_seconds, "log": list(panel.log), "transfer": steps,
        "manager": next(n for n, r, s, _ in STAFF.values() if r == "manager" and s == store),
        "digest_time": settings.alerts.supervisor_digest_time or "（未开启）",
        "clock": {"now": panel.clock.now().astimezone(DEMO_TZ).strftime("%m-%d %H:%M"),
                  "ahead": _span(panel.clock.offset)},
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


_FIELDS = {"store": "门店", "stores": "门店", "sku": "商品", "qty": "数量", "template": "任务模板", "lines": "商品行",
           "sold_at": "销售时间", "sale_id": "销售单号", "body": "请求内容"}


def _error(answer: Any, status: int = 422) -> str:
    """The API's English error as a Chinese sentence for the panel's log (the field and value kept)."""
    raw = str(answer.get("error", answer)) if isinstance(answer, dict) else str(answer)
    if status == 0:
        return "连不上机器人自己的接口，请确认 storebot demo 还在运行。"
    if status == 401:
        return "口令或签名不对，接口拒绝了请求。"
    if status >= 500:
        return f"机器人接口出错（{status}），请看终端里的日志。"
    quoted = re.search(r"'([^']*)'", raw)
    value = quoted.group(1) if quoted else ""
    words = set(re.findall(r"[a-z_]+", raw.partition(":")[0]))
    name = next((zh for key, zh in _FIELDS.items() if key in words), "")
    lowered = raw.lower()
    if "unknown" in lowered or "no " in lowered or "not found" in lowered:
        return f"找不到{name or '这个编号'} {value}".rstrip() + "，请检查后再试。"
    if name == "数量" or "limit" in lowered:
        return f"{name or '数量'}不合理，请填写合理的正整数。"
    return f"{name or '输入'}有误，请检查后再试。" + (f"（{value}）" if value else "")


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
        panel.note(False, f"收银失败（HTTP {status}）：{_error(answer, status)}", _now(request))
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
        panel.note(False, f"推送失败（HTTP {status}）：{_error(answer, status)}", _now(request))
        raise _back()
    settings = request.app[DEPS].config
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


def _span(delta: timedelta) -> str:
    hours, rest = divmod(int(delta.total_seconds()) // 60, 60)
    return f"{hours} 小时 {rest} 分钟" if rest else f"{hours} 小时"


def jump_for(choice: str, now: datetime) -> timedelta | None:
    """Pure: how far the 「+2 小时」 and 「到明早 8 点」 buttons move the demo's time from `now`."""
    if choice == "2h":
        return timedelta(hours=2)
    if choice == "morning":
        here = now.astimezone(DEMO_TZ)
        target = here.replace(hour=MORNING_HOUR, minute=0, second=0, microsecond=0)
        if target <= here:
            target += timedelta(days=1)
        return target - here
    return None


JOB_WORDS = (("tasks.generate", "新任务 {} 个"), ("tasks.chase.reminded", "任务提醒 {} 条"),
             ("tasks.chase.escalated", "超时通知店长 {} 条"), ("tasks.chase.missed", "漏做 {} 个"),
             ("transfers.check", "调拨提醒/升级 {} 次"), ("stock.alert_tick", "库存提醒 {} 次"),
             ("digest.supervisors", "督导晨报 {} 份"))


@routes.post("/dashboard/demo/clock")
async def demo_clock(request: web.Request) -> web.Response:
    """拨快时钟: the demo's time jumps ahead (+2 h, or to 08:00 next morning) and every scheduled job runs for the
    time skipped, so reminders, overdue notices, escalations and the morning digest show up at once."""
    panel = _panel(request)
    form = await request.post()
    delta = jump_for(str(form.get("jump", "")), panel.clock.now())
    if delta is None:
        panel.note(False, "请选择「+2 小时」或「到明早 8 点」。", _now(request))
        raise _back()
    if panel.jump is not None and not panel.jump.done():
        panel.note(False, "上一次拨钟还在补跑定时任务，请等它完成再拨。", _now(request))
        raise _back()
    panel.note(True, f"正在拨快 {_span(delta)} 并补跑这段时间的定时任务，几秒后刷新本页查看结果。", _now(request))
    panel.jump = asyncio.create_task(_jump(request.app, panel, delta))
    raise _back()


async def _jump(app: web.Application, panel: DemoPanel, delta: timedelta) -> None:
    done = await advance_clock(app[DEPS], panel.clock, delta)
    what = "，".join(words.format(done[key]) for key, words in JOB_WORDS if done.get(key))
    local = panel.clock.now().astimezone(DEMO_TZ)
    panel.note(True, f"时钟拨快 {_span(delta)}，演示时间现在是 {local:%m-%d %H:%M}。" + (f"这段时间里：{what}。" if what
               else "这段时间里没有到点的任务和提醒。") + "到手机页面查看各人收到的消息。", f"{local:%H:%M:%S}")
