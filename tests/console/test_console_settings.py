"""Settings in the console: edited by whom the role allows, validated by config.toml's rules, stored, applied
without a restart (here and on a second server over the same database), and audited."""

from __future__ import annotations

import asyncio
import io

import pytest
from openpyxl import Workbook
from sqlalchemy import select

from bot.keys import DEPS
from bot.live_settings import LIVE
from models.console_settings import SettingChange, SettingOverride
from models.safety_import import SafetyImport
from models.stock import StockLevel
from tests.console_support import csrf_of, sign_in

RULES = {"no_movement_days": "7", "count_approval_units": "3", "count_approval_percent": "10",
         "quiet_hours": "23:00-07:00"}


async def _csrf(client, path: str = "/console/settings") -> str:
    return csrf_of(await (await client.get(path)).text())


async def _changes(sessions) -> list[SettingChange]:
    async with sessions() as session:
        return list((await session.execute(select(SettingChange).order_by(SettingChange.id))).scalars())


async def test_admin_changes_rules_applied_at_once_and_audited(client, chain, sessions) -> None:
    sign_in(client, "admin")
    resp = await client.post("/console/settings/rules", data={**RULES, "csrf": await _csrf(client)},
                             allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/console/settings?saved=1"
    config = client.server.app[DEPS].config
    assert config.rules.no_movement_days == 7
    assert config.rules.count_approval_units == 3 and config.rules.count_approval_percent == 10
    assert config.alerts.quiet_hours == "23:00-07:00"
    changes = await _changes(sessions)
    assert {(c.setting, c.old_value, c.new_value) for c in changes} == {
        ("rules.no_movement_days", "3", "7"), ("rules.count_approval_units", "5", "3"),
        ("rules.count_approval_percent", "20.0", "10.0"), ("alerts.quiet_hours", '""', '"23:00-07:00"'),
    }
    assert all(c.userid == "admin" and c.person == "陈总" for c in changes)
    page = await (await client.get("/console/settings/audit")).text()
    assert "滞销天数" in page and "陈总" in page and "免打扰时段" in page
    again = await client.post("/console/settings/rules", data={**RULES, "csrf": await _csrf(client)})
    assert again.status == 200 and len(await _changes(sessions)) == 4  # the same values: no new audit rows


async def test_invalid_value_is_refused_in_chinese_and_nothing_stored(client, chain, sessions) -> None:
    sign_in(client, "admin")
    bad = {**RULES, "no_movement_days": "0", "quiet_hours": "25:00-07:00"}
    resp = await client.post("/console/settings/rules", data={**bad, "csrf": await _csrf(client)})
    assert resp.status == 422
    html = await resp.text()
    assert "滞销天数要填 1 到 365 之间的整数" in html and "免打扰时段要写成" in html
    assert client.server.app[DEPS].config.rules.no_movement_days == 3
    assert await _changes(sessions) == []


async def test_post_without_csrf_token_is_refused(client, chain, sessions) -> None:
    sign_in(client, "admin")
    for data in (RULES, {**RULES, "csrf": "forged"}):
        resp = await client.post("/console/settings/rules", data=data)
        assert resp.status == 403
    assert await _changes(sessions) == []


async def test_no_session_post_goes_to_login(client, chain) -> None:
    resp = await client.post("/console/settings/rules", data=RULES, allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"].startswith("/console/login")


@pytest.mark.parametrize("userid", ["m1", "sup1", "s1"])
async def test_only_head_office_edits_chain_wide_settings(client, chain, sessions, userid) -> None:
    sign_in(client, userid)
    page = await (await client.get("/console/settings")).text()
    assert "只有总部可以修改" in page and "保存规则" not in page
    csrf = csrf_of(page)
    for path, data in (("/console/settings/rules", RULES), ("/console/settings/escalation", {"escalation": "x"}),
                       ("/console/settings/tasks", {"key": "k"}), ("/console/settings/tasks/morning/delete", {})):
        resp = await client.post(path, data={**data, "csrf": csrf})
        assert resp.status == 403, path
    assert await _changes(sessions) == []


async def _safety(sessions, chain, store: str, sku: str) -> int:
    async with sessions() as session:
        stmt = select(StockLevel.safety_stock).where(StockLevel.store_id == chain.stores[store].id,
                                                     StockLevel.sku_id == chain.skus[sku].id)
        return int((await session.execute(stmt)).scalar_one())


@pytest.mark.parametrize(("userid", "allowed", "refused"), [
    ("m1", ["S001"], ["S002", "S003"]),
    ("sup1", ["S001", "S002"], ["S003", "S004"]),
    ("admin", ["S001", "S002", "S003", "S004"], []),
])
async def test_safety_stock_follows_the_viewers_stores(client, chain, sessions, userid, allowed, refused) -> None:
    sign_in(client, userid)
    page = await (await client.get("/console/settings/safety")).text()
    csrf = csrf_of(page)
    for code in allowed:
        assert f'value="{code}"' in page
        resp = await client.post("/console/settings/safety", data={"store": code, "sku": "A001", "value": "9",
                                                                   "csrf": csrf}, allow_redirects=False)
        assert resp.status == 302, code
        assert await _safety(sessions, chain, code, "A001") == 9
    for code in refused:
        assert f'value="{code}"' not in page
        resp = await client.post("/console/settings/safety", data={"store": code, "sku": "A001", "value": "9",
                                                                   "csrf": csrf})
        assert resp.status == 403, code
        assert await _safety(sessions, chain, code, "A001") == 5
    changes = await _changes(sessions)
    assert [(c.setting, c.scope, c.old_value, c.new_value) for c in changes] == [
        ("safety_stock", f"{code} A001", "5", "9") for code in allowed
    ]


async def test_store_staff_cannot_edit_safety_stock(client, chain, sessions) -> None:
    sign_in(client, "s1")
    page = await (await client.get("/console/settings/safety")).text()
    assert "修改请找店长" in page
    resp = await client.post("/console/settings/safety", data={"store": "S001", "sku": "A001", "value": "9",
                                                               "csrf": csrf_of(page)})
    assert resp.status == 403
    assert await _safety(sessions, chain, "S001", "A001") == 5


async def test_escalation_chain_edited_and_applied(client, chain, sessions) -> None:
    sign_in(client, "admin")
    text = "default: 店长 0, 督导 60, 总部 240\nlow_stock: 店长 0, 总部 30"
    resp = await client.post("/console/settings/escalation", data={"escalation": text,
                                                                   "csrf": await _csrf(client)})
    assert resp.status == 200 and "已保存" in await resp.text()
    alerts = client.server.app[DEPS].config.alerts
    assert [(s.to, s.after_minutes) for s in alerts.chain_for("low_stock")] == [("manager", 0), ("admin", 30)]
    assert [(s.to, s.after_minutes) for s in alerts.chain_for("no_movement")][1] == ("supervisor", 60)
    bad = await client.post("/console/settings/escalation", data={"escalation": "low_stock: 老板 5",
                                                                  "csrf": await _csrf(client)})
    assert bad.status == 422 and "看不懂" in await bad.text()


async def test_task_templates_created_edited_deleted(client, chain, sessions) -> None:
    sign_in(client, "admin")
    form = {"original": "", "key": "shelf_check", "title": "货架检查", "schedule": "0 15 * * *",
            "assignee_role": "staff", "proof": "photo", "due_minutes": "45", "points": "5", "stores": "s001 S002",
            "body": "拍一张货架照片"}
    resp = await client.post("/console/settings/tasks", data={**form, "csrf": await _csrf(client)})
    assert resp.status == 200 and "货架检查" in await resp.text()
    template = client.server.app[DEPS].config.template("shelf_check")
    assert template is not None and template.stores == ("S001", "S002") and template.proof == "photo"
    bad = await client.post("/console/settings/tasks", data={**form, "original": "shelf_check", "schedule": "every day",
                                                             "csrf": await _csrf(client)})
    assert bad.status == 422 and "cron" in await bad.text()
    not_cron = await client.post("/console/settings/tasks", data={**form, "original": "shelf_check",
                                                                 "schedule": "99 99 * * *",
                                                                 "csrf": await _csrf(client)})
    assert not_cron.status == 422 and "config.toml" in await not_cron.text()
    taken = await client.post("/console/settings/tasks", data={**form, "csrf": await _csrf(client)})
    assert taken.status == 422 and "已经有别的模板在用" in await taken.text()
    await client.post("/console/settings/tasks", data={**form, "original": "shelf_check", "points": "8",
                                                      "csrf": await _csrf(client)})
    template = client.server.app[DEPS].config.template("shelf_check")
    assert template is not None and template.points == 8
    await client.post("/console/settings/tasks/shelf_check/delete", data={"csrf": await _csrf(client)})
    assert client.server.app[DEPS].config.template("shelf_check") is None
    assert [c.setting for c in await _changes(sessions)] == ["tasks", "tasks", "tasks"]


async def _second_server_sees_the_change(make_client, make_settings, chain) -> None:
    first = await make_client()
    second = await make_client(make_settings(console={"reload_seconds": 0.05}))
    live = second.server.app[LIVE]
    assert second.server.app[DEPS].config.rules.no_movement_days == 3
    sign_in(first, "admin")
    await first.post("/console/settings/rules", data={**RULES, "csrf": await _csrf(first)})
    assert first.server.app[DEPS].config.rules.no_movement_days == 7
    async with asyncio.timeout(20):
        await live.wait_for_version(1)  # the second server's own periodic reload, not a call from here
    assert second.server.app[DEPS].config.rules.no_movement_days == 7
    assert second.server.app[DEPS].config.alerts.quiet_hours == "23:00-07:00"


async def test_second_server_on_the_same_database_applies_the_change(make_client, make_settings, chain) -> None:
    await _second_server_sees_the_change(make_client, make_settings, chain)


@pytest.mark.pg
async def test_second_server_on_the_same_postgresql_applies_the_change(make_client, make_settings, chain) -> None:
    await _second_server_sees_the_change(make_client, make_settings, chain)


async def test_a_restarted_server_starts_with_the_stored_settings(make_client, chain) -> None:
    first = await make_client()
    sign_in(first, "admin")
    await first.post("/console/settings/rules", data={**RULES, "csrf": await _csrf(first)})
    later = await make_client()
    assert later.server.app[DEPS].config.rules.no_movement_days == 7


async def test_a_stored_value_the_seed_now_refuses_falls_back(make_client, chain, sessions, clock) -> None:
    async with sessions() as session, session.begin():
        session.add(SettingOverride(name="rules.no_movement_days", value="-4", version=1, updated_at=clock.now(),
                                    updated_by="admin"))
        session.add(SettingOverride(name="alerts.quiet_hours", value='"21:00-09:00"', version=1,
                                    updated_at=clock.now(), updated_by="admin"))
    client = await make_client()
    config = client.server.app[DEPS].config
    assert config.rules.no_movement_days == 3 and config.alerts.quiet_hours == "21:00-09:00"


async def _wait_imports(client) -> None:
    from bot.console.safety import IMPORTS

    async with asyncio.timeout(30):
        while client.server.app[IMPORTS]:
            await asyncio.gather(*client.server.app[IMPORTS])


async def _upload(client, name: str, data: bytes):
    csrf = await _csrf(client, "/console/settings/safety")
    import aiohttp

    form = aiohttp.FormData()
    form.add_field("csrf", csrf)
    form.add_field("file", data, filename=name)
    return await client.post("/console/settings/safety/upload", data=form)


async def test_safety_stock_from_a_csv_file_with_progress(client, chain, sessions) -> None:
    sign_in(client, "sup1")
    csv = "门店编码,商品编码,安全库存\nS001,A001,12\nS002,A002,0\nS001,A003,5\n"
    resp = await _upload(client, "safety.csv", csv.encode())
    assert resp.status == 200
    body = await resp.json()
    assert body["total"] == 3
    await _wait_imports(client)
    job = await (await client.get(f"/console/settings/safety/jobs/{body['job']}")).json()
    assert job == {"job": body["job"], "state": "done", "total": 3, "done": 3, "changed": 2, "message": ""}
    assert await _safety(sessions, chain, "S001", "A001") == 12
    assert await _safety(sessions, chain, "S002", "A002") == 0
    changes = await _changes(sessions)
    assert [(c.scope, c.old_value, c.new_value, c.source) for c in changes] == [
        ("S001 A001", "5", "12", "safety.csv"), ("S002 A002", "5", "0", "safety.csv")]
    sign_in(client, "m3")  # someone else's import is not theirs to look at
    assert (await client.get(f"/console/settings/safety/jobs/{body['job']}")).status == 404


async def test_safety_stock_from_an_xlsx_file(client, chain, sessions) -> None:
    sign_in(client, "admin")
    book = Workbook()
    sheet = book.active
    sheet.append(["store", "sku", "safety_stock"])
    for i in range(1, 6):
        sheet.append(["S004", f"A00{i}", 20 + i])
    out = io.BytesIO()
    book.save(out)
    resp = await _upload(client, "safety.xlsx", out.getvalue())
    assert resp.status == 200
    await _wait_imports(client)
    assert [await _safety(sessions, chain, "S004", f"A00{i}") for i in range(1, 6)] == [21, 22, 23, 24, 25]


async def test_a_file_with_a_bad_line_changes_nothing(client, chain, sessions) -> None:
    sign_in(client, "m1")
    csv = "store,sku,safety_stock\nS001,A001,12\nS001,A002,lots\nS003,A001,4\nS001,ZZZ,1\n"
    resp = await _upload(client, "safety.csv", csv.encode())
    assert resp.status == 422
    errors = (await resp.json())["errors"]
    assert any("第 3 行" in e and "安全库存要填" in e for e in errors)
    assert any("第 4 行" in e and "不能修改门店 S003" in e for e in errors)
    assert any("第 5 行" in e and "没有商品 ZZZ" in e for e in errors)
    assert await _safety(sessions, chain, "S001", "A001") == 5
    async with sessions() as session:
        assert (await session.execute(select(SafetyImport))).first() is None


async def test_a_template_added_in_the_console_is_generated_by_the_running_scheduler_job(
    client, chain, sessions
) -> None:
    """The scheduler's job reads deps.config: a template saved in the console is due at its next time, with no
    restart (09:00 in Shanghai is the test clock's now)."""
    from models.task import TaskInstance
    from scheduler.task_jobs import generate_tasks

    sign_in(client, "admin")
    form = {"original": "", "key": "console_check", "title": "控制台加的检查", "schedule": "0 9 * * *",
            "assignee_role": "manager", "proof": "confirm", "due_minutes": "60", "points": "3", "stores": "S001",
            "body": ""}
    await client.post("/console/settings/tasks", data={**form, "csrf": await _csrf(client)})
    created = await generate_tasks(client.server.app[DEPS])
    async with sessions() as session:
        rows = (await session.execute(select(TaskInstance).where(TaskInstance.id.in_(created)))).scalars().all()
    assert [(r.template_key, r.store_id, r.title) for r in rows] == [
        ("console_check", chain.stores["S001"].id, "控制台加的检查")]


async def test_count_approval_threshold_edited_in_the_console_decides_the_next_count(harness, chain,
                                                                                    sessions) -> None:
    """Through the chat: "盘点 A001 19" (system 20) books at once under config.toml's thresholds (5 units, 20%), and
    waits for the manager's approval once head office set them to 0 in the console."""
    from models.count import StockCount

    async def states() -> list[str]:
        async with sessions() as session:
            return list((await session.execute(select(StockCount.state).order_by(StockCount.id))).scalars())

    await harness.say("s1", "盘点 A001 19")
    assert await states() == ["booked"]
    sign_in(harness.client, "admin")
    resp = await harness.client.post("/console/settings/rules", data={
        **RULES, "count_approval_units": "0", "count_approval_percent": "0", "csrf": await _csrf(harness.client)})
    assert resp.status == 200
    await harness.say("s1", "盘点 A002 19")
    assert await states() == ["booked", "pending"]


async def test_audit_list_follows_the_viewers_stores(client, chain, sessions) -> None:
    sign_in(client, "m1")
    await client.post("/console/settings/safety", data={"store": "S001", "sku": "A002", "value": "11",
                                                         "csrf": await _csrf(client, "/console/settings/safety")})
    sign_in(client, "admin")
    await client.post("/console/settings/rules", data={**RULES, "csrf": await _csrf(client)})
    admin_page = await (await client.get("/console/settings/audit")).text()
    assert "S001 A002" in admin_page and "滞销天数" in admin_page
    sign_in(client, "m3")  # S003, another region
    other = await (await client.get("/console/settings/audit")).text()
    assert "S001 A002" not in other and "滞销天数" in other
    sign_in(client, "sup1")  # S001's region
    assert "S001 A002" in await (await client.get("/console/settings/audit")).text()
