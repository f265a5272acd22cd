"""待审批 / pending: what waits on the sender's decision (transfers and count differences), each with its id."""

from __future__ import annotations

from datetime import datetime

from bot.events import TextMessage
from bot.messages import render
from handlers.router import Context, Router
from models.waiting import counts_awaiting, transfers_awaiting

router = Router("pending")

MAX_LINES = 10


def waited(since: datetime, now: datetime) -> str:
    """How long something has waited, as people say it: 刚刚 / 25 分钟 / 3 小时 / 2 天."""
    minutes = int((now - since).total_seconds() // 60)
    if minutes < 1:
        return "刚刚"
    if minutes < 60:
        return f"{minutes} 分钟"
    if minutes < 48 * 60:
        return f"{minutes // 60} 小时"
    return f"{minutes // (24 * 60)} 天"


@router.command("待审批", "待审核", "pending")
async def pending_command(event: TextMessage, ctx: Context, args: list[str]) -> None:
    transfers = await transfers_awaiting(ctx.session, ctx.user)
    counts = await counts_awaiting(ctx.session, ctx.user)
    await ctx.reply(render(
        "pending_list", role=ctx.user.role, transfers=transfers[:MAX_LINES], counts=counts[:MAX_LINES],
        more=max(0, len(transfers) - MAX_LINES) + max(0, len(counts) - MAX_LINES),
        waited=lambda at: waited(at, ctx.now),
    ))
