"""任务 / 积分 commands, task:done buttons and text answers to text tasks."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from bot.errors import NotAllowed
from bot.events import CardClick, TextMessage
from bot.messages import render
from handlers import task_notify
from handlers.parse import ascii_id
from handlers.router import UNHANDLED, Context, Router, split_command
from models.org import Region, Staff, Store
from models.outbox import update_card_button
from models.points import leaderboard, month_of, standing
from models.task import TaskInstance, can_complete, complete, done_label, get_task, hhmm, open_tasks_for, remaining_skus

router = Router("task")

BOARD_SIZE = 10

# Commands of other routers that must never be taken as the answer to a text task.
NOT_ANSWERS = ("帮助", "help", "任务", "tasks", "积分", "points", "交图", "photo")


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
        label = (done_label(task, by, ctx.user.userid) if by else "已结束") if task.state != "missed" else "已过期"
        await update_card_button(ctx.session, ctx.user.userid, event.response_code, label, now=ctx.now)
    await ctx.reply(render("task_finished", title=task.title, state=task.state, who=by.name if by else "",
                           me=by is not None and by.id == ctx.user.id, when=when))


@router.on(TextMessage)
async def text_answer(event: TextMessage, ctx: Context) -> Any:
    """The next text reply of someone with an open text task is its answer (commands excepted)."""
    if split_command(event.content, NOT_ANSWERS) is not None:
        return UNHANDLED
    tasks = await open_tasks_for(ctx.session, ctx.user, "text")
    if not tasks or not event.content.strip():
        return UNHANDLED
    task = tasks[0]
    result = await complete(ctx.session, task, ctx.user, ctx.now, answer=event.content.strip()[:2000])
    await ctx.reply(render("task_answer_saved", title=task.title, state=result.state, points=result.points,
                           more=len(tasks) - 1))
    return None
