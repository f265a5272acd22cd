"""Text-proof store tasks take only what plausibly answers them: a clerk's unrelated message is never filed as the
store's answer; 答复 answers on purpose; small talk, questions back and lone codes are never taken."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.clock import FakeClock
from bot.config import Settings
from bot.deps import Deps
from handlers.task import plausible_answer
from handlers.task_gen import run_now
from tests.factories import Chain
from tests.input_support import replies, text, texts_to
from tests.task_support import TEMPLATES, tasks, with_settings

HANDOVER = {"key": "handover", "title": "交班记录", "schedule": "0 9 * * *", "proof": "text", "due_minutes": 600,
            "points": 5}
PROPS = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


async def _store_text_task(deps: Deps, make_settings: Callable[..., Settings]) -> tuple[Deps, str, str]:
    """A store text task at S001 (s1, s2 are its clerks); returns deps, the rota's clerk and the other one."""
    settings_ = make_settings(tasks=[*TEMPLATES, HANDOVER])
    deps = with_settings(deps, settings_)
    template = settings_.template("handover")
    assert template is not None
    async with deps.sessions() as session, session.begin():
        await run_now(session, settings_, template, ["S001"], deps.clock.now())
    [task] = await tasks(deps.sessions)
    rota = "s1" if task.assignee_id == (await _staff_id(deps, "s1")) else "s2"
    return deps, rota, "s2" if rota == "s1" else "s1"


async def _staff_id(deps: Deps, userid: str) -> int:
    from models.org import staff_by_userid

    async with deps.sessions() as session:
        staff = await staff_by_userid(session, userid)
        assert staff is not None
        return staff.id


async def say(deps: Deps, user: str, content: str) -> str:
    [reply] = texts_to(await replies(deps, text(user, content), keep=True), user)
    return reply


def test_what_plausibly_answers_a_task_question() -> None:
    for answer in ("灭火器都在有效期内", "卖了 12 件，顾客说偏甜", "12", "门口地垫湿了，已换", "all good today"):
        assert plausible_answer(answer), answer
    for chatter in ("你好", "在吗？", "好的！", "谢谢", "ok", "A001", "6900000000011", "a005", "今天谁值班？",
                    "可乐还有吗", "。", "嗯", "", "  ", "!!", "测试"):
        assert not plausible_answer(chatter), chatter


@PROPS
@given(st.text(max_size=80))
def test_plausible_answer_takes_any_text(content: str) -> None:
    assert plausible_answer(content) in (True, False)


async def test_a_clerks_unrelated_message_is_not_taken_as_the_stores_answer(
    deps: Deps, chain: Chain, clock: FakeClock, make_settings: Callable[..., Settings]
) -> None:
    deps, rota, other = await _store_text_task(deps, make_settings)
    reply = await say(deps, other, "下午三点送货车到")  # not on the rota: free text is not the store's answer
    assert reply == ("「下午三点送货车到」没有当作「交班记录」的答复。要交这个任务，发「答复 你的内容」；"
                     "其他用法发「帮助」。")
    assert (await say(deps, rota, "你好")).startswith("没看懂这条消息。")  # small talk is never an answer
    assert (await say(deps, rota, "可乐还有吗")).startswith("没看懂这条消息。")
    assert [t.state for t in await tasks(deps.sessions)] == ["open"]

    reply = await say(deps, other, "答复：冷柜温度正常，地面已拖")  # on purpose: anyone of the store may answer
    assert reply.startswith("「交班记录」的答复已收到，积分 +5")
    [task] = await tasks(deps.sessions)
    assert task.state == "done" and task.answer == "冷柜温度正常，地面已拖"
    assert task.completed_by == await _staff_id(deps, other)
    assert await say(deps, rota, "答复 已交") == "你现在没有要文字答复的任务。发「任务」看看本店的待办。"


async def test_the_rotas_clerk_answers_by_plain_text_and_answer_needs_content(
    deps: Deps, chain: Chain, clock: FakeClock, make_settings: Callable[..., Settings]
) -> None:
    deps, rota, _ = await _store_text_task(deps, make_settings)
    [task] = await tasks(deps.sessions)
    usage = await say(deps, rota, "答复")
    assert usage.startswith("这样交答复：「答复 你的内容」") and f"#{task.id} 交班记录" in usage
    assert (await say(deps, rota, f"答复 {task.id} 收银台零钱已点清")).startswith("「交班记录」的答复已收到")
    [task] = await tasks(deps.sessions)
    assert task.answer == "收银台零钱已点清"


@PROPS
@given(rest=st.text(max_size=40), user=st.sampled_from(["s1", "s2", "m1", "sup1"]))
async def test_any_answer_command_gets_one_reply(deps: Deps, chain: Chain, rest: str, user: str) -> None:
    rows = await replies(deps, text(user, "答复 " + rest))
    [reply] = texts_to(rows, user)
    assert reply.strip()


async def test_the_rota_clerks_free_text_hours_after_the_card_is_not_taken_until_a_reminder(
    deps: Deps, chain: Chain, clock: FakeClock, make_settings: Callable[..., Settings]
) -> None:
    from handlers.task_chase import chase

    deps, rota, _ = await _store_text_task(deps, make_settings)  # fired 09:00, due 19:00
    clock.advance(hours=2)
    reply = await say(deps, rota, "下午三点送货车到")  # long after the card: not the store's answer
    assert reply.startswith("「下午三点送货车到」没有当作「交班记录」的答复。")
    assert [t.state for t in await tasks(deps.sessions)] == ["open"]
    clock.advance(hours=7, minutes=50)  # 18:50: the reminder (15 minutes before due) asks again
    async with deps.sessions() as session, session.begin():
        await chase(session, deps.config, clock.now())
    [task] = await tasks(deps.sessions)
    assert task.reminded_at is not None
    clock.advance(minutes=5)
    assert (await say(deps, rota, "冷柜温度正常")).startswith("「交班记录」的答复已收到")

