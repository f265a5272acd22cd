"""帮助 / help, and the fallback answer for anything the other routers did not understand."""

from __future__ import annotations

from bot.events import CardClick, TextMessage
from bot.messages import render
from handlers.router import Context, Router

router = Router("help")


@router.command("帮助", "help", "?", "？", "菜单", "menu")
async def help_command(event: TextMessage, ctx: Context, args: list[str]) -> None:
    await ctx.reply(render("help", reason="", role=ctx.user.role))


@router.on(CardClick)
async def stale_button(event: CardClick, ctx: Context) -> None:
    await ctx.reply("这个按钮已失效或无法识别，请在最新的卡片上操作，或回复「帮助」查看用法。")
