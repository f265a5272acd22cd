"""The customer loop in chat: WeCom's external-contact changes, `客户 <会员号|尾号>` and `活动`."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from bot.deps import Deps
from bot.events import CardClick, ExternalContactChange
from bot.messages import render
from handlers.router import UNHANDLED, Context, Router
from models.campaign import Campaign, launch
from models.campaign_health import acknowledge, check
from models.customer import contact_changed
from models.outbox import update_card_button

log = logging.getLogger(__name__)
router = Router("customer")


async def on_contact_change(event: ExternalContactChange, deps: Deps, session: AsyncSession) -> None:
    """Sent by WeCom itself ("sys"), not by a person: no directory lookup, no reply."""
    member = await contact_changed(
        session, change=event.change_type, staff_userid=event.user_id, external_userid=event.external_userid,
        state=event.state, now=deps.clock.now(),
    )
    log.info("external contact %s %s by %s: member %s", event.change_type, event.external_userid, event.user_id,
             member.customer_id if member else "not found")


@router.button("campaign")
async def campaign_button(event: CardClick, ctx: Context, action: str, ident: str) -> object:
    """campaign:launch:<id> on the preflight card: the owner (or an admin) launches; a second tap changes nothing."""
    if action not in ("launch", "ack") or not ident.isdigit() or len(ident) > 12:
        return UNHANDLED
    if action == "ack":
        done = await acknowledge(ctx.session, int(ident), ctx.user.userid)
        await update_card_button(ctx.session, ctx.user.userid, event.response_code, "已知悉" if done else "已处理",
                                 now=ctx.now)
        return None
    campaign = await ctx.session.get(Campaign, int(ident))
    if campaign is None:
        await ctx.reply(render("customer_campaign_gone"))
        return None
    if ctx.user.userid != campaign.owner and ctx.user.role != "admin":
        await ctx.reply(render("customer_campaign_not_owner", campaign=campaign.name))
        return None
    launched = await launch(ctx.session, campaign.id, ctx.user.userid, ctx.deps.config.customers, ctx.now)
    await ctx.session.refresh(campaign)
    await update_card_button(ctx.session, ctx.user.userid, event.response_code,
                             "已发起" if launched else "早已发起", now=ctx.now)
    await ctx.reply(render("customer_campaign_launched", campaign=campaign, launched=launched))
    if launched:
        await check(ctx.session, ctx.deps.config, ctx.now)  # what is wrong at launch is told at once
    return None
