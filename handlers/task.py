"""任务 / 积分 commands, task:done buttons and text answers to text tasks (答复, or the plausible next text)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from bot.errors import NotAllowed
from bot.events import CardClick, TextMessage
from bot.messages import render
from handlers import task_notify
from handlers.parse import ascii_id, clip, normalize_text
from handlers.router import UNHANDLED, Context, Router, split_command
from models.org import Region, Staff, Store
from models.outbox import update_card_button
from models.points import leaderboard, month_of, standing
from models.task import TaskInstance, can_complete, complete, get_task, hhmm, open_tasks_for, remaining_skus

router = Router("task")

BOARD_SIZE = 10

# Commands of other routers that must never be taken as the answer to a text task.
NOT_ANSWERS = ("帮助", "help", "任务", "tasks", "积分", "points", "交图", "photo")
ANSWER_COMMAND = ("答复", "回答", "answer")
ANSWER_WINDOW = timedelta(minutes=60)  # a store task's card or reminder this recent makes free text its answer
_ANSWER_HEAD = re.compile(r"^(?:答复|回答|answer(?![a-z]))[\s:：,，、]*", re.IGNORECASE)
_ANSWER_ID = re.compile(r"^#?(\d{1,9})号?(?:[\s:：,，、]+|$)")
# What people say to a bot that answers no task question.
SMALL_TALK = frozenset((
    "你好", "您好", "在吗", "在不在", "好", "好的", "好滴", "嗯", "嗯嗯", "哦", "噢", "收到", "谢谢", "多谢", "谢了",
    "ok", "okay", "hi", "hello", "早", "早上好", "上午好", "下午好", "晚上好", "晚安", "哈哈", "哈哈哈", "辛苦了",
    "知道了", "明白", "行", "可以", "对", "是", "不是", "没有", "测试", "test",
))
_BARE_CODE = re.compile(r"^(?=.*\d)[0-9A-Za-z\-]+$")  # a SKU code, a barcode, an id typed alone


def plausible_answer(text: str) -> bool:
    """Could this free text answer a task's question? Not small talk, not a question back, not a lone code or
    barcode, not punctuation or a single character. (A lone short number may answer "how many".)"""
    core = normalize_text(text)
    bare = re.sub(r"[\W_]+", "", core).lower()
    if sum(1 for c in bare if c.isalnum()) < 2 and not bare.isdigit():
        return False
    if bare in SMALL_TALK or core.endswith(("?", "？")) or re.search(r"(吗|么|呢)[\W_]*$", core):
        return False
    return not (_BARE_CODE.fullmatch(core) and not core.isdigit()) and not (core.isdigit() and len(core) >= 8)


async def _tz(ctx: Context) -> str:
    store = await ctx.session.get(Store, ctx.user.store_id) if ctx.user.store_id else None
    return store.timezone if store else "Asia/Shanghai"


@router.command("任务", "tasks")
async def list_tasks(event: TextMessage, ctx: Context, args: list[str]) -> None:
    tz = await _tz(ctx)
    tasks = await open_tasks_for(ctx.session, ctx.user)
    lines = []
    for t in tasks:
        left = await remaining_skus(ctx.session, t.id) if t.proof == "count" else []
        rota = await ctx.session.get(Staff, t.assignee_id) if t.assignee_id != ctx.user.id else ctx.user
        lines.append({"id": t.id, "title": t.title, "due": hhmm(t.due_at, tz), "proof": t.proof,
                      "late": ctx.now > t.due_at, "left": left, "mine": t.assignee_id == ctx.user.id,
                      "rota": rota.name if rota else ""})
    await ctx.reply(render("task_list", tasks=lines))


@router.command("积分", "points")
async def my_points(event: TextMessage, ctx: Context, args: list[str]) -> None:
    """A clerk or manager: their points and rank; a supervisor their region's board, an admin every region's:
    they do no store tasks, so ranking them among clerks would say nothing."""
    month = month_of(ctx.now, await _tz(ctx))
    if ctx.user.role in ("supervisor", "admin"):
        stmt = select(Region).order_by(Region.id)
        if ctx.user.role == "supervisor":
            stmt = stmt.where(Region.id == ctx.user.region_id)
        boards = [{"region": r.name, "lines": await leaderboard(ctx.session, r.id, month, BOARD_SIZE)}
                  for r in (await ctx.session.execute(stmt)).scalars()]
        await ctx.reply(render("task_points", boards=boards, month=month, role=ctx.user.role))
        return
    mine = await standing(ctx.session, ctx.user, month)
    await ctx.reply(render("task_points", s=mine, month=month))


@router.button("task")
async def task_button(event: CardClick, ctx: Context, action: str, ident: str) -> Any:
    """task:done:<id> completes a confirm task; task:how:<id> (and done on any other proof) explains the proof;
    on a finished task both say who finished it, and the card is settled."""
    task_id = ascii_id(ident)
    if action not in ("done", "how") or task_id is None:
        return UNHANDLED
    task = await get_task(ctx.session, task_id)
    if not can_complete(task, ctx.user):
        raise NotAllowed(f"user {ctx.user.userid} may not act on task {task.id}",
                         "这个任务不是你的，发「任务」查看你的任务。")
    if task.state != "open":
        await _finished(event, ctx, task)
        return None
    if action == "how" or task.proof != "confirm":
        skus = await remaining_skus(ctx.session, task.id) if task.proof == "count" else []
        await ctx.reply(render("task_guide", proof=task.proof, skus=skus, task_id=task.id))
        return None
    result = await complete(ctx.session, task, ctx.user, ctx.now, clicked=bool(event.response_code))
    label = "已完成" if result.state == "done" else "已补交"
    if event.response_code:
        await update_card_button(ctx.session, ctx.user.userid, event.response_code, label, now=ctx.now)
    await ctx.reply(task_notify.done_text(result))
    return None


async def _finished(event: CardClick, ctx: Context, task: TaskInstance) -> None:
    by = await ctx.session.get(Staff, task.completed_by) if task.completed_by else None
    store = await ctx.session.get(Store, task.store_id)
    when = hhmm(task.completed_at, store.timezone if store else "Asia/Shanghai") if task.completed_at else ""
    if event.response_code:
        mine = task_notify.done_label(task, by, ctx.user.userid) if by else "已结束"
        label = mine if task.state != "missed" else "已过期"
        await update_card_button(ctx.session, ctx.user.userid, event.response_code, label, now=ctx.now)
    await ctx.reply(render("task_finished", title=task.title, state=task.state, who=by.name if by else "",
                           me=by is not None and by.id == ctx.user.id, when=when))


@router.command(*ANSWER_COMMAND)
async def answer_command(event: TextMessage, ctx: Context, args: list[str]) -> None:
    """`答复 [编号] 内容`: the answer to a text task, said on purpose (any of the store's text tasks)."""
    tasks = await open_tasks_for(ctx.session, ctx.user, "text")
    content = event.content.strip()  # the answer is kept as typed (full-width punctuation and all)
    if (head := _ANSWER_HEAD.match(content)) is None:
        content = normalize_text(event.content)
        head = _ANSWER_HEAD.match(content)
    rest = content[head.end():] if head else ""
    chosen = None
    if (ident := _ANSWER_ID.match(rest)) is not None:
        chosen = next((t for t in tasks if str(t.id) == ident.group(1)), None)
        if chosen is not None:  # else the number is part of the answer ("答复 12 件")
            rest = rest[ident.end():]
    if not tasks:
        await ctx.reply(render("task_answer_none"))
        return
    if not rest.strip():
        await ctx.reply(render("task_answer_usage", tasks=[(t.id, t.title) for t in tasks]))
        return
    await _take_answer(ctx, chosen or _first_own(tasks, ctx.user), tasks, rest.strip())


@router.on(TextMessage)
async def text_answer(event: TextMessage, ctx: Context) -> Any:
    """The next plausible text reply of someone with an open text task of their own is its answer (commands,
    small talk, questions and lone codes excepted; a store task only from its rota clerk, and only soon after
    its card or reminder). Otherwise free text is not filed as the store's answer: the sender is told 答复."""
    if split_command(event.content, NOT_ANSWERS) is not None:
        return UNHANDLED
    if not event.content.strip() or not plausible_answer(event.content):
        return UNHANDLED
    tasks = await open_tasks_for(ctx.session, ctx.user, "text")
    if not tasks:
        return UNHANDLED
    own = [t for t in tasks if t.assignee_id == ctx.user.id and _just_asked(t, ctx.now)]
    if not own:
        await ctx.reply(render("task_answer_hint", title=tasks[0].title, given=clip(event.content)))
        return None
    await _take_answer(ctx, own[0], tasks, event.content.strip())
    return None


def _just_asked(task: TaskInstance, now: datetime) -> bool:
    """A personal task (a broadcast) asked this person: their next plausible text answers it. A store task takes
    the rota clerk's free text only within ANSWER_WINDOW of its card or its reminder; later, 答复 says it."""
    if task.kind != "scheduled":
        return True
    asked = max(task.fire_at, task.reminded_at or task.fire_at)
    return now - asked <= ANSWER_WINDOW


def _first_own(tasks: list[TaskInstance], user: Staff) -> TaskInstance:
    return next((t for t in tasks if t.assignee_id == user.id), tasks[0])


async def _take_answer(ctx: Context, task: TaskInstance, tasks: list[TaskInstance], answer: str) -> None:
    result = await complete(ctx.session, task, ctx.user, ctx.now, answer=answer[:2000])
    await ctx.reply(render("task_answer_saved", title=task.title, state=result.state, points=result.points,
                           more=len(tasks) - 1))
