"""Chasing: reminder once, overdue to the manager once, missed when the window closes, improvement plans."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from bot.clock import FakeClock
from bot.config import Settings, TaskRulesSettings
from bot.deps import Deps
from handlers.task_chase import chase, overdue_due, reminder_due, window_closed
from handlers.task_gen import generate_due
from models.task import TaskInstance
from tests.factories import Chain
from tests.task_support import NINE_LOCAL, outbox, task_settings, tasks, texts

RULES = TaskRulesSettings(remind_before_minutes=15, overdue_notify_after_minutes=15)
DUE = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


def _task(**kw: object) -> TaskInstance:
    values: dict[str, object] = {"state": "open", "due_at": DUE, "closes_at": DUE + timedelta(hours=23),
                                 "reminded_at": None, "escalated_at": None}
    values.update(kw)
    return TaskInstance(**values)


def test_due_and_overdue_are_pure_functions_of_now() -> None:
    t = _task()
    assert not reminder_due(t, DUE - timedelta(minutes=16), RULES)
    assert reminder_due(t, DUE - timedelta(minutes=15), RULES)
    assert not reminder_due(t, DUE, RULES)
    assert not reminder_due(_task(reminded_at=DUE), DUE - timedelta(minutes=1), RULES)
    assert not overdue_due(t, DUE + timedelta(minutes=14), RULES)
    assert overdue_due(t, DUE + timedelta(minutes=15), RULES)
    assert not overdue_due(_task(state="done"), DUE + timedelta(hours=1), RULES)
    assert not window_closed(t, DUE + timedelta(hours=22)) and window_closed(t, DUE + timedelta(hours=23))


async def _pass(deps: Deps, settings: Settings, at: datetime) -> None:
    deps.clock.set(at)  # type: ignore[attr-defined]
    async with deps.sessions() as session, session.begin():
        await generate_due(session, settings, at)
        await chase(session, settings, at)


async def test_reminder_then_overdue_to_the_manager_then_missed(
    deps: Deps, chain: Chain, clock: FakeClock, make_settings: Callable[..., Settings]
) -> None:
    settings = task_settings(make_settings)
    await _pass(deps, settings, NINE_LOCAL)
    [task] = await tasks(deps.sessions, template_key="morning_check", store_id=chain.stores["S002"].id)
    await _pass(deps, settings, NINE_LOCAL + timedelta(minutes=44))
    assert texts(await outbox(deps.sessions, "s3")) == []
    for minute in (45, 50, 59):
        await _pass(deps, settings, NINE_LOCAL + timedelta(minutes=minute))
    [reminder] = texts(await outbox(deps.sessions, "s3"))
    assert "晨检" in reminder and "10:00 截止" in reminder
    await _pass(deps, settings, NINE_LOCAL + timedelta(minutes=74))
    assert texts(await outbox(deps.sessions, "m2")) == []
    for minute in (75, 90):
        await _pass(deps, settings, NINE_LOCAL + timedelta(minutes=minute))
    [overdue] = texts(await outbox(deps.sessions, "m2"))
    assert "钱多多" in overdue and "晨检" in overdue
    await _pass(deps, settings, NINE_LOCAL + timedelta(hours=23, minutes=59))
    assert (await tasks(deps.sessions, id=task.id))[0].state == "open"  # late work counts until the next period
    await _pass(deps, settings, NINE_LOCAL + timedelta(hours=24))
    assert (await tasks(deps.sessions, id=task.id))[0].state == "missed"
    assert len(await tasks(deps.sessions, template_key="morning_check", store_id=chain.stores["S002"].id)) == 2


async def test_two_missed_stocktakes_in_a_row_bring_the_manager_an_improvement_plan(
    deps: Deps, chain: Chain, clock: FakeClock, make_settings: Callable[..., Settings]
) -> None:
    settings = task_settings(make_settings, improvement_plan_due_days=2)
    first = datetime(2026, 11, 24, 13, 30, tzinfo=UTC)  # 21:30 Shanghai
    for hours in range(0, 49, 1):  # two days of hourly passes
        await _pass(deps, settings, first + timedelta(hours=hours))
    counts = await tasks(deps.sessions, template_key="closing_count", store_id=chain.stores["S002"].id)
    assert [t.state for t in counts] == ["missed", "missed", "open"]
    [plan] = await tasks(deps.sessions, kind="improvement", store_id=chain.stores["S002"].id)
    assert plan.assignee_id == chain.staff["m2"].id and plan.proof == "confirm"
    assert plan.due_at == first + timedelta(days=2) + timedelta(days=2)  # missed at day 2, plan due 2 days on
    assert "闭店盘点" in plan.title and "补做" in plan.body
    notices = [t for t in texts(await outbox(deps.sessions, "m2")) if "改进计划" in t]
    assert len(notices) == 1 and "连续两次" in notices[0]
    cards = [m for m in await outbox(deps.sessions, "m2") if m.card_task_id == f"task-{plan.id}"]
    assert len(cards) == 1 and cards[0].payload["button_list"][0]["key"] == f"task:done:{plan.id}"
    await _pass(deps, settings, first + timedelta(hours=49))
    assert len(await tasks(deps.sessions, kind="improvement")) == 3  # one per store with a manager, once each
