"""Image messages: photo proof for the sender's open photo task; 交图 gives a kept photo to a named task."""

from __future__ import annotations

from sqlalchemy import select

from bot.events import ImageMessage, TextMessage
from bot.messages import render
from bot.queues.photos import attach, receive
from handlers.parse import parse_id
from handlers.router import Context, Router
from models.task import get_task
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
