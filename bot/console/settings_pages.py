"""Console settings pages: edit what config.toml seeds (rules, quiet hours, escalation chains, task templates),
stored in the database, applied by every server within console.reload_seconds, and audited.

Head office (admin) edits chain-wide settings; everyone else sees them read-only. Safety stock has its own pages
(bot/console/safety.py), where managers and supervisors edit their own stores.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy import select

from bot.console import settings_forms as forms
from bot.console.live import reload_settings
from bot.console.pages import render
from bot.console.session import check_csrf, require_viewer
from bot.keys import CLOCK, SESSIONS, WRITE_LOCK
from bot.live_settings import LIVE
from models.console_settings import (
    EDITABLE,
    SAFETY_STOCK,
    SettingInvalid,
    SettingOverride,
    current_value,
    recent_changes,
    save_setting,
)
from models.org import Store
from models.viewer import Viewer

routes = web.RouteTableDef()
CHINA = ZoneInfo("Asia/Shanghai")
SAVED = "已保存。本服务器立即生效，其他服务器一分钟内生效，不用重启。"


def write_lock(app: web.Application) -> contextlib.AbstractAsyncContextManager[object]:
    """On SQLite, queue behind the app's one write lock (as the POS API does); PostgreSQL needs none."""
    lock = app.get(WRITE_LOCK)
    if lock is None or app[LIVE].seed.database.url.startswith("postgresql"):
        return contextlib.nullcontext()
    return lock


def may_edit_chain(viewer: Viewer) -> bool:
    """Chain-wide settings (rules, quiet hours, escalation, task templates): head office only."""
    return viewer.role == "admin"


def may_edit_safety(viewer: Viewer) -> bool:
    """Safety stock: managers, supervisors and head office, each for the stores they look after."""
    return viewer.role in ("manager", "supervisor", "admin")


async def save(request: web.Request, viewer: Viewer, values: dict[str, Any]) -> str | None:
    """Validate and store these keys in one transaction, then apply them here at once; a Chinese error or None."""
    app = request.app
    live = app[LIVE]
    try:
        async with write_lock(app), app[SESSIONS]() as session, session.begin():
            for name, value in values.items():
                await save_setting(session, live.seed, name, value, userid=viewer.userid, person=viewer.name,
                                   now=app[CLOCK].now())
    except SettingInvalid as err:
        return f"没有保存：这个值不符合 config.toml 的规则（{err}）。"
    await reload_settings(live, app[SESSIONS])
    return None


async def _overrides(request: web.Request) -> dict[str, SettingOverride]:
    async with request.app[SESSIONS]() as session:
        rows = (await session.execute(select(SettingOverride))).scalars().all()
    return {row.name: row for row in rows}


async def _settings_page(request: web.Request, viewer: Viewer, *, status: int = 200, error: str = "",
                         form: dict[str, str] | None = None) -> web.Response:
    current = request.app[LIVE].current
    overrides = await _overrides(request)
    changed = {
        name: f"{row.updated_at.astimezone(CHINA):%Y-%m-%d %H:%M} 由 {row.updated_by} 在控制台修改"
        for name, row in overrides.items()
    }
    values = {
        "no_movement_days": str(current.rules.no_movement_days),
        "count_approval_units": str(current.rules.count_approval_units),
        "count_approval_percent": f"{current.rules.count_approval_percent:g}",
        "quiet_hours": current.alerts.quiet_hours,
        "escalation": forms.escalation_text(current_value(current, "alerts.escalation")),
    }
    values.update(form or {})
    return render(request, viewer, "settings.html", status=status, title="设置", values=values, changed=changed,
                  templates=current.tasks, editable=EDITABLE, can_edit=may_edit_chain(viewer),
                  can_edit_safety=may_edit_safety(viewer), assignees=forms.ASSIGNEES, proofs=forms.PROOFS,
                  error=error, saved=SAVED if request.query.get("saved") else "")


@routes.get("/console/settings")
async def settings_home(request: web.Request) -> web.StreamResponse:
    viewer = await require_viewer(request)
    return await _settings_page(request, viewer)


async def _admin_form(request: web.Request) -> tuple[Viewer, dict[str, str]]:
    viewer = await require_viewer(request)
    form = {k: str(v) for k, v in (await request.post()).items() if isinstance(v, str)}
    check_csrf(request, form.get("csrf"))
    if not may_edit_chain(viewer):
        raise web.HTTPForbidden(text="只有总部可以修改这项设置。", content_type="text/plain")
    return viewer, form


@routes.post("/console/settings/rules")
async def save_rules(request: web.Request) -> web.StreamResponse:
    viewer, form = await _admin_form(request)
    parsed: dict[str, forms.Result] = {
        "rules.no_movement_days": forms.whole(form.get("no_movement_days"), "滞销天数", lo=1, hi=365),
        "rules.count_approval_units": forms.whole(form.get("count_approval_units"), "相差件数", lo=0, hi=100_000),
        "rules.count_approval_percent": forms.number(form.get("count_approval_percent"), "相差百分比", lo=0,
                                                     hi=1000),
        "alerts.quiet_hours": forms.quiet_hours(form.get("quiet_hours")),
    }
    problems = [r.message for r in parsed.values() if isinstance(r, forms.Invalid)]
    error = " ".join(problems) or await save(
        request, viewer, {k: r.value for k, r in parsed.items() if isinstance(r, forms.Parsed)}
    )
    if error:
        return await _settings_page(request, viewer, status=422, error=error, form=form)
    raise web.HTTPFound("/console/settings?saved=1")


@routes.post("/console/settings/escalation")
async def save_escalation(request: web.Request) -> web.StreamResponse:
    viewer, form = await _admin_form(request)
    parsed = forms.escalation(form.get("escalation"))
    error = parsed.message if isinstance(parsed, forms.Invalid) else await save(
        request, viewer, {"alerts.escalation": parsed.value}
    )
    if error:
        return await _settings_page(request, viewer, status=422, error=error, form=form)
    raise web.HTTPFound("/console/settings?saved=1")


async def _store_codes(request: web.Request) -> frozenset[str]:
    async with request.app[SESSIONS]() as session:
        return frozenset((await session.execute(select(Store.code))).scalars())


def _templates_now(request: web.Request) -> list[dict[str, Any]]:
    value: list[dict[str, Any]] = current_value(request.app[LIVE].current, "tasks")
    return value


@routes.get("/console/settings/tasks/{key}")
async def edit_template(request: web.Request) -> web.StreamResponse:
    viewer = await require_viewer(request)
    key = request.match_info["key"]
    templates = {t["key"]: t for t in _templates_now(request)}
    if key != "new" and key not in templates:
        raise web.HTTPFound("/console/settings")
    template = templates.get(key, {"key": "", "title": "", "schedule": "0 9 * * *", "assignee_role": "staff",
                                   "proof": "confirm", "due_minutes": 60, "points": 10, "stores": [], "body": ""})
    return _template_page(request, viewer, template, original="" if key == "new" else key)


def _template_page(request: web.Request, viewer: Viewer, template: dict[str, Any], *, original: str,
                   error: str = "", status: int = 200) -> web.Response:
    form = {k: " ".join(v) if isinstance(v, list) else str(v) for k, v in template.items()}
    for name, default in (("due_minutes", "60"), ("points", "10"), ("body", ""), ("stores", ""),
                          ("assignee_role", "staff"), ("proof", "confirm")):
        form.setdefault(name, default)
    return render(request, viewer, "template_edit.html", status=status, title="任务模板", form=form,
                  original=original, can_edit=may_edit_chain(viewer), assignees=forms.ASSIGNEES,
                  proofs=forms.PROOFS, error=error)


@routes.post("/console/settings/tasks")
async def save_template(request: web.Request) -> web.StreamResponse:
    viewer, form = await _admin_form(request)
    original = form.get("original", "")
    templates = _templates_now(request)
    existing = next((t for t in templates if t["key"] == original), None) if original else None
    parsed = forms.template(form, existing, await _store_codes(request))
    if isinstance(parsed, forms.Invalid):
        return _template_page(request, viewer, form, original=original, error=parsed.message, status=422)
    value: dict[str, Any] = parsed.value
    if value["key"] != original and any(t["key"] == value["key"] for t in templates):
        return _template_page(request, viewer, form, original=original, status=422,
                              error=f"编号 {value['key']} 已经有别的模板在用，请换一个。")
    if existing is None:
        new_list = [*templates, value]
    else:
        new_list = [value if t["key"] == original else t for t in templates]
    error = await save(request, viewer, {"tasks": new_list})
    if error:
        return _template_page(request, viewer, form, original=original, error=error, status=422)
    raise web.HTTPFound("/console/settings?saved=1")


@routes.post("/console/settings/tasks/{key}/delete")
async def delete_template(request: web.Request) -> web.StreamResponse:
    viewer, _ = await _admin_form(request)
    key = request.match_info["key"]
    templates = _templates_now(request)
    kept = [t for t in templates if t["key"] != key]
    if len(kept) != len(templates):
        error = await save(request, viewer, {"tasks": kept})
        if error:
            return await _settings_page(request, viewer, status=422, error=error)
    raise web.HTTPFound("/console/settings?saved=1")


@routes.get("/console/settings/audit")
async def audit(request: web.Request) -> web.StreamResponse:
    """Who changed what, when, from what to what: head office sees every row, others their stores' and the
    chain-wide ones."""
    viewer = await require_viewer(request)
    before_raw = request.query.get("before", "")
    before = int(before_raw) if before_raw.isascii() and before_raw.isdigit() and len(before_raw) < 10 else None
    async with request.app[SESSIONS]() as session:
        rows = await recent_changes(session, store_ids=viewer.store_ids, before_id=before, limit=100)
    labels = {name: e.label for name, e in EDITABLE.items()} | {SAFETY_STOCK: "安全库存"}
    items = [{
        "id": r.id, "at": r.at.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S"), "who": f"{r.person}（{r.userid}）",
        "what": labels.get(r.setting, r.setting), "scope": r.scope, "old": _shown(r.setting, r.old_value),
        "new": _shown(r.setting, r.new_value), "source": "表单" if r.source == "form" else f"文件 {r.source}",
    } for r in rows]
    older = items[-1]["id"] if len(items) == 100 else None
    return render(request, viewer, "audit.html", title="修改记录", items=items, older=older)


def _shown(setting: str, stored: str, limit: int = 300) -> str:
    """An audit value as people read it: plain text, the escalation chain as the form shows it, templates by
    title; anything unexpected as stored."""
    try:
        value = json.loads(stored)
    except ValueError:
        value = stored
    if setting == "alerts.escalation" and isinstance(value, dict):
        text = forms.escalation_text(value)
    elif setting == "tasks" and isinstance(value, list):
        text = "、".join(f"{t.get('title', '')}（{t.get('schedule', '')}，{t.get('points', 10)} 分）"
                        for t in value if isinstance(t, dict)) or "（没有模板）"
    elif isinstance(value, str):
        text = value or "（不设）"
    else:
        text = json.dumps(value, ensure_ascii=False) if isinstance(value, list | dict) else str(value)
    return text if len(text) <= limit else text[:limit] + "…"
