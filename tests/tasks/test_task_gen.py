"""Task generation: due periods (pure), one instance per (template, store, period), /api/tasks/run, catch-up."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from bot.clock import FakeClock
from bot.config import Settings, TaskTemplate
from bot.deps import Deps
from handlers.task_gen import current_period, due_periods, generate_due, jitter_seconds
from models.org import Store
from models.task import TaskCountLine
from tests.conftest import auth
from tests.factories import Chain
from tests.task_support import NINE_LOCAL, TEMPLATES, outbox, task_settings, tasks

MORNING = TaskTemplate(key="m", title="晨检", schedule="0 9 * * *", proof="photo", due_minutes=60)


def test_due_periods_fire_at_nine_store_local() -> None:
    start = datetime(2026, 11, 24, 0, 0, tzinfo=UTC)
    assert due_periods(MORNING, "Asia/Shanghai", start, datetime(2026, 11, 24, 0, 59, tzinfo=UTC)) == []
    fires = due_periods(MORNING, "Asia/Shanghai", start, datetime(2026, 11, 24, 1, 0, tzinfo=UTC))
    assert [f.isoformat() for f in fires] == ["2026-11-24T09:00:00+08:00"]
    tokyo = due_periods(MORNING, "Asia/Tokyo", start - timedelta(hours=1), start)
    assert [f.isoformat() for f in tokyo] == ["2026-11-24T09:00:00+09:00"]


def test_due_periods_lists_every_missed_fire_in_order() -> None:
    start, end = datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 11, 23, 2, tzinfo=UTC)
    fires = due_periods(MORNING, "Asia/Shanghai", start, end)
    assert [f.day for f in fires] == [20, 21, 22, 23]


def test_current_period_is_the_open_window_else_the_next_one() -> None:
    at_0930 = datetime(2026, 11, 24, 1, 30, tzinfo=UTC)
    assert current_period(MORNING, "Asia/Shanghai", at_0930).isoformat() == "2026-11-24T09:00:00+08:00"
    at_1500 = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)
    assert current_period(MORNING, "Asia/Shanghai", at_1500).isoformat() == "2026-11-25T09:00:00+08:00"


def test_jitter_is_stable_and_bounded() -> None:
    spread = [jitter_seconds(i, 90) for i in range(500)]
    assert spread == [jitter_seconds(i, 90) for i in range(500)]
    assert min(spread) >= 0 and max(spread) <= 90 and len(set(spread)) > 30
    assert jitter_seconds(7, 0) == 0


async def test_template_fires_at_nine_store_local_for_every_store_once(
    deps: Deps, chain: Chain, clock: FakeClock, make_settings: Callable[..., Settings]
) -> None:
    settings = task_settings(make_settings)
    async with deps.sessions() as session, session.begin():  # S003 runs on Tokyo time: 09:00 there is 00:00 UTC
        await session.execute(update(Store).where(Store.code == "S003").values(timezone="Asia/Tokyo"))
    clock.set(datetime(2026, 11, 24, 0, 0, tzinfo=UTC))
    async with deps.sessions() as session, session.begin():
        first = await generate_due(session, settings, clock.now())
    morning = await tasks(deps.sessions, template_key="morning_check")
    assert [t.store_id for t in morning] == [chain.stores["S003"].id]
    assert morning[0].id in first and morning[0].period_key == "2026-11-24T09:00"

    clock.set(NINE_LOCAL - timedelta(seconds=30))
    async with deps.sessions() as session, session.begin():
        assert await generate_due(session, settings, clock.now()) == []
    for step in (NINE_LOCAL, NINE_LOCAL + timedelta(minutes=1), NINE_LOCAL + timedelta(minutes=30)):
        clock.set(step)
        async with deps.sessions() as session, session.begin():
            await generate_due(session, settings, clock.now())
    morning = await tasks(deps.sessions, template_key="morning_check")
    # S004 has no staff member (only its manager), so nobody of the role is there to assign
    assert sorted(t.store_id for t in morning) == sorted(chain.stores[c].id for c in ("S001", "S002", "S003"))
    s001 = next(t for t in morning if t.store_id == chain.stores["S001"].id)
    assert s001.period_key == "2026-11-24T09:00"
    assert s001.due_at == NINE_LOCAL + timedelta(minutes=60)
    assert s001.assignee_id in (chain.staff["s1"].id, chain.staff["s2"].id)

    cards = {m.card_task_id: m for m in await outbox(deps.sessions) if m.msgtype == "template_card"}
    # one card per instance and person of the role at the store, never two: S001 has s1 and s2
    assert len(cards) == sum(2 if t.store_id == chain.stores["S001"].id else 1 for t in await tasks(deps.sessions))
    teammate = "s2" if s001.assignee_id == chain.staff["s1"].id else "s1"
    assert cards[f"task-{s001.id}-{teammate}"].recipient == teammate
    for task in morning:
        card = cards[f"task-{task.id}"]
        assert card.payload["button_list"][0]["key"] == f"task:how:{task.id}"
        assert task.fire_at <= card.next_attempt_at <= task.fire_at + timedelta(seconds=90)


async def test_downtime_catch_up_only_inside_the_due_window(
    deps: Deps, chain: Chain, clock: FakeClock, make_settings: Callable[..., Settings]
) -> None:
    settings = task_settings(make_settings)
    clock.set(NINE_LOCAL + timedelta(minutes=40))  # server was down at 09:00, starts at 09:40
    async with deps.sessions() as session, session.begin():
        await generate_due(session, settings, clock.now())
    assert len(await tasks(deps.sessions, template_key="morning_check")) == 3
    clock.set(NINE_LOCAL + timedelta(days=1, minutes=61))  # down all of the next morning's window
    async with deps.sessions() as session, session.begin():
        await generate_due(session, settings, clock.now())
    assert len(await tasks(deps.sessions, template_key="morning_check")) == 3
    assert len(await tasks(deps.sessions, template_key="display_photo")) == 3  # 10:00 window still open


async def test_count_task_lists_a_rotating_cycle_count_set(
    deps: Deps, chain: Chain, clock: FakeClock, make_settings: Callable[..., Settings]
) -> None:
    settings = task_settings(make_settings)
    seen: set[int] = set()
    for day in range(2):
        clock.set(datetime(2026, 11, 24 + day, 13, 30, tzinfo=UTC))
        async with deps.sessions() as session, session.begin():
            await generate_due(session, settings, clock.now())
    async with deps.sessions() as session:
        task_ids = [t.id for t in await tasks(deps.sessions, template_key="closing_count",
                                              store_id=chain.stores["S001"].id)]
        for tid in task_ids:
            rows = (await session.execute(select(TaskCountLine.sku_id).where(TaskCountLine.task_id == tid))).all()
            assert len(rows) == 3
            seen |= {r[0] for r in rows}
    assert seen == {s.id for s in chain.skus.values()}  # 5 SKUs, 3 a day: all covered in two days


async def test_api_run_uses_the_schedule_path_and_adds_nothing_the_second_time(
    deps: Deps, chain: Chain, clock: FakeClock, make_settings: Callable[..., Settings],
    make_client: Callable[..., Awaitable[Any]],
) -> None:
    settings = task_settings(make_settings)
    async with deps.sessions() as session, session.begin():
        scheduled = await generate_due(session, settings, clock.now())
    client = await make_client(settings)
    resp = await client.post("/api/tasks/run", json={"template": "morning_check", "stores": ["S001"]},
                             headers=auth())
    assert resp.status == 200
    assert await resp.json() == {"template": "morning_check", "created": 0, "tasks": []}
    resp = await client.post("/api/tasks/run", json={"template": "open_door"}, headers=auth())
    body = await resp.json()
    assert body["created"] == 3
    again = await (await client.post("/api/tasks/run", json={"template": "open_door"}, headers=auth())).json()
    assert again["created"] == 0
    assert len(await tasks(deps.sessions)) == len(scheduled) + 3
    listed = await (await client.get("/api/tasks?store=S001&date=2026-11-24", headers=auth())).json()
    assert [t["title"] for t in listed] == ["晨检"]
    assert set(listed[0]) >= {"id", "title", "store", "assignee", "due_at", "state"}
    # 08:00's window had closed at 09:00, so the manual run made tomorrow's period, pushed now
    tomorrow = await (await client.get("/api/tasks?store=S001&date=2026-11-25", headers=auth())).json()
    assert [(t["title"], t["period"]) for t in tomorrow] == [("开门确认", "2026-11-25T08:00")]
    metrics = await (await client.get("/metrics")).text()
    assert f'storebot_task_instances{{state="open"}} {len(scheduled) + 3}.0' in metrics


async def test_api_run_bad_input_changes_nothing(
    deps: Deps, chain: Chain, make_settings: Callable[..., Settings], make_client: Callable[..., Awaitable[Any]],
) -> None:
    client = await make_client(task_settings(make_settings))
    resp = await client.post("/api/tasks/run", json={"template": "nope"}, headers=auth())
    assert resp.status == 422 and "template" in (await resp.json())["error"]
    resp = await client.post("/api/tasks/run", json={"template": "morning_check", "stores": ["S999"]},
                             headers=auth())
    assert resp.status == 422 and "S999" in (await resp.json())["error"]
    assert (await client.post("/api/tasks/run", json={"template": "morning_check"})).status == 401
    assert await tasks(deps.sessions) == []


@pytest.mark.pg
async def test_two_server_processes_create_each_instance_once(
    deps: Deps, chain: Chain, clock: FakeClock, make_settings: Callable[..., Settings],
    make_client: Callable[..., Awaitable[Any]],
) -> None:
    settings = task_settings(make_settings)
    a, b = await make_client(settings), await make_client(settings)

    async def scheduler_pass() -> list[int]:
        async with deps.sessions() as session, session.begin():
            return await generate_due(session, settings, clock.now())

    results = await asyncio.gather(
        a.post("/api/tasks/run", json={"template": "morning_check"}, headers=auth()),
        b.post("/api/tasks/run", json={"template": "morning_check"}, headers=auth()),
        scheduler_pass(), scheduler_pass(),
    )
    made = [(await r.json())["created"] for r in results[:2]] + [len(x) for x in results[2:]]
    assert sum(made) == 3
    assert len(await tasks(deps.sessions, template_key="morning_check")) == 3
    cards = [m for m in await outbox(deps.sessions) if m.msgtype == "template_card"]
    assert len(cards) == 4  # one per instance and person of the role: S001 has two clerks


async def test_the_running_scheduler_catches_up_a_period_missed_while_down(
    deps: Deps, chain: Chain, clock: FakeClock, make_settings: Callable[..., Settings],
    make_client: Callable[..., Awaitable[Any]],
) -> None:
    from scheduler import job_specs

    clock.set(NINE_LOCAL + timedelta(minutes=40))  # the server starts at 09:40; 晨检 fired at 09:00
    settings = make_settings(tasks=TEMPLATES, scheduler={"enabled": True})
    assert {"tasks.catch_up", "tasks.generate", "tasks.chase"} <= {s.id for s in job_specs(deps)}
    await make_client(settings)
    async with asyncio.timeout(10):
        # the real APScheduler runs the start-up pass in its own task; nothing to await but the rows
        while len(await tasks(deps.sessions, template_key="morning_check")) < 3:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    rows = await tasks(deps.sessions, template_key="morning_check")
    assert len(rows) == 3 and {t.period_key for t in rows} == {"2026-11-24T09:00"}
    assert all(t.due_at == NINE_LOCAL + timedelta(minutes=60) for t in rows)
