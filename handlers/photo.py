"""Image messages: photo proof for the sender's open photo task; 交图 or a tap on the which-task card gives a kept
photo to a named task."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from bot.errors import NotAllowed
from bot.events import CardClick, ImageMessage, TextMessage
from bot.messages import render
from bot.queues.photos import attach, receive
from handlers.parse import ascii_id, parse_id
from handlers.router import UNHANDLED, Context, Router
from models.org import Staff, Store
from models.outbox import update_card_button
from models.task import TaskInstance, can_complete, get_task, hhmm
from models.task_proof import TaskPhoto

router = Router("photo")


@router.on(ImageMessage)
async def photo_proof(event: ImageMessage, ctx: Context) -> None:
    """Kept here; the photo worker (bot/queues/photos.py) downloads and checks it, then tells the sender what happened
    and what to do next."""
    await receive(ctx.session, ctx.user, event.msg_id, event.media_id, ctx.now)


@router.command("交图", "photo")
async def attach_photo(event: TextMessage, ctx: Context, args: list[str]) -> None:
    """`交图 <任务编号>`: give the sender's last unassigned photo to that task."""
    if len(args) != 1:
        await ctx.reply(render("task_photo_usage"))
        return
    task = await get_task(ctx.session, parse_id(args[0], what="任务编号", usage=render("task_photo_usage")))
    stmt = (
        select(TaskPhoto).where(TaskPhoto.staff_id == ctx.user.id, TaskPhoto.state == "unassigned")
        .order_by(TaskPhoto.id.desc()).limit(1)
    )
    photo = (await ctx.session.execute(stmt)).scalar_one_or_none()
    if photo is None:
        await ctx.reply(render("task_photo_none"))
        return
    await ctx.reply(await attach(ctx.session, ctx.deps, photo, task, ctx.user, ctx.now))


@router.button("task")
async def photo_choice(event: CardClick, ctx: Context, action: str, ident: str) -> Any:
    """`task:photo:<task_id>` on the card that asked which task a photo is for: that photo completes that task.
    The card's own task_id (`photo-<photo id>`) names the photo, so two pending photos never swap."""
    task_id = ascii_id(ident)
    if action != "photo" or task_id is None:
        return UNHANDLED
    task = await get_task(ctx.session, task_id)
    if not can_complete(task, ctx.user):
        raise NotAllowed(f"user {ctx.user.userid} may not act on task {task.id}",
                         "这个任务不是你的，发「任务」查看你的任务。")
    photo = await _photo_of_card(ctx, event.task_id)
    if photo is None:
        await ctx.reply(render("task_photo_none"))
        return None
    if photo.state == "accepted" and photo.task_id is not None:  # a second tap, or the same tap retried
        given = await ctx.session.get(TaskInstance, photo.task_id)
        await ctx.reply(render("task_photo_given", title=given.title if given else task.title))
        return None
    if photo.state != "unassigned":
        await ctx.reply(render("button_stale"))
        return None
    if task.state != "open":  # someone else finished it meanwhile: the photo stays for another task
        await ctx.reply(render("task_photo_kept", finished=await _finished_text(ctx, task)))
        return None
    text = await attach(ctx.session, ctx.deps, photo, task, ctx.user, ctx.now)
    if event.response_code:
        await update_card_button(ctx.session, ctx.user.userid, event.response_code, f"已交给{task.title}",
                                 now=ctx.now)
    await ctx.reply(text)
    return None


async def _photo_of_card(ctx: Context, card_task_id: str) -> TaskPhoto | None:
    """The photo the card asked about (locked: two taps queue), else the sender's newest kept photo."""
    prefix, _, raw = card_task_id.partition("-")
    photo_id = ascii_id(raw) if prefix == "photo" else None
    stmt = select(TaskPhoto).where(TaskPhoto.staff_id == ctx.user.id)
    if photo_id is not None:
        stmt = stmt.where(TaskPhoto.id == photo_id)
    else:
        stmt = stmt.where(TaskPhoto.state == "unassigned").order_by(TaskPhoto.id.desc()).limit(1)
    return (await ctx.session.execute(stmt.with_for_update())).scalar_one_or_none()


async def _finished_text(ctx: Context, task: TaskInstance) -> str:
    by = await ctx.session.get(Staff, task.completed_by) if task.completed_by else None
    store = await ctx.session.get(Store, task.store_id)
    when = hhmm(task.completed_at, store.timezone if store else "Asia/Shanghai") if task.completed_at else ""
    return render("task_finished", title=task.title, state=task.state, who=by.name if by else "",
                  me=by is not None and by.id == ctx.user.id, when=when)
