"""What an inbound chat event means: the root router and dispatch(), called by the inbox worker."""

from __future__ import annotations

import logging
from functools import cache

from sqlalchemy.ext.asyncio import AsyncSession

from bot.deps import Deps
from bot.errors import DomainError
from bot.events import CardClick, Event, ExternalContactChange, ImageMessage, LocationMessage, OtherEvent, TextMessage
from bot.messages import render
from handlers import (
    customer,
    help,
    location,
    my_transfers,
    pending,
    photo,
    stock,
    stock_chat,
    task,
    transfer,
    transfer_ship,
)
from handlers.router import UNHANDLED, Context, Router
from models.org import staff_by_userid
from models.outbox import send_text

log = logging.getLogger(__name__)

# Events a person sent on purpose: these always get an answer, never silence.
_CONVERSATIONAL = (TextMessage, ImageMessage, LocationMessage, CardClick)


@cache
def root_router() -> Router:
    root = Router("root")
    for module in (stock_chat, stock, transfer, transfer_ship, pending, my_transfers, customer, task, photo, location):
        root.include(module.router)
    root.include(help.router)  # last: its catch-all answers anything the others did not understand
    return root


def expects_answer(event: Event) -> bool:
    """Something a person sent on purpose and waits to hear about: not LOCATION, enter_agent or another event."""
    if isinstance(event, _CONVERSATIONAL):
        return True
    return isinstance(event, OtherEvent) and event.msg_type != "event"


async def dispatch(event: Event, deps: Deps, session: AsyncSession) -> None:
    """Handle one event inside the caller's transaction (the inbox worker marks the event done in it too).

    A DomainError rolls back what the handler wrote (savepoint) and tells the user why, in their words.
    """
    if isinstance(event, ExternalContactChange):  # from WeCom ("sys"), not from a person in the directory
        await customer.on_contact_change(event, deps, session)
        return
    now = deps.clock.now()
    user = await staff_by_userid(session, event.from_user)
    if user is None:
        if expects_answer(event):
            await send_text(session, event.from_user, render("unknown_user", userid=event.from_user), now=now)
        log.info("event from unknown user %s ignored", event.from_user)
        return
    ctx = Context(deps=deps, session=session, user=user, now=now, event=event)
    try:
        async with session.begin_nested():
            result = await root_router().dispatch(event, ctx)
    except DomainError as err:
        log.info("refused %s from %s: %s", type(event).__name__, event.from_user, err)
        await ctx.reply(err.user_message)
        return
    if result is UNHANDLED and expects_answer(event):
        await ctx.reply(render("help", reason="没看懂这条消息。", role=user.role))
