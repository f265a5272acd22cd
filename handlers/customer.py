"""The customer loop in chat: WeCom's external-contact changes, `客户 <会员号|尾号>` and `活动`."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from bot.deps import Deps
from bot.events import CardClick, ExternalContactChange, TextMessage
from bot.messages import render
from handlers.alert_delivery import settle_campaign_handled
from handlers.campaign_health import acknowledge, check
from handlers.customer_chat import MAX_CANDIDATES, find_members, masked, running_campaigns
from handlers.router import UNHANDLED, Context, Router
from models.campaign import Campaign, launch
from models.customer import contact_changed
from models.customer_profile import profile
from models.outbox import update_card_button

log = logging.getLogger(__name__)
router = Router("customer")
STAGE_NAMES = {"new": "新会员", "active": "活跃", "high_potential": "高潜", "at_risk": "有流失风险", "dormant": "沉睡",
               "lost": "已流失"}


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
        if done:  # the other cards carrying it (the owner's, an escalated copy) say who handled it
            await settle_campaign_handled(ctx.session, [int(ident)], ctx.user.name, ctx.now, tapped=event.task_id)
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


@router.command("客户", "customer", "会员")
async def customer_command(event: TextMessage, ctx: Context, args: list[str]) -> None:
    """客户 <会员号|手机尾号4位>: a two-line profile and what to offer; never the full phone number."""
    if len(args) != 1 or len(args[0]) > 64:
        await ctx.reply(render("customer_usage"))
        return
    found = await find_members(ctx.session, args[0], ctx.user)
    if not found:
        await ctx.reply(render("customer_not_found", query=args[0]))
        return
    if len(found) > 1:
        shown = [(m.customer_id, m.name, masked(m.phone)) for m in found[:MAX_CANDIDATES]]
        await ctx.reply(render("customer_candidates", query=args[0], members=shown, more=len(found) > len(shown)))
        return
    p = await profile(ctx.session, found[0].customer_id, ctx.deps.config, ctx.now)
    last = found[0].last_purchase_at
    await ctx.reply(render(
        "customer_profile", p=p, member_name=found[0].name, phone=masked(found[0].phone), stage=STAGE_NAMES[p["stage"]],
        days_ago=(ctx.now - last).days if last else None))


@router.command("活动", "campaigns")
async def campaigns_command(event: TextMessage, ctx: Context, args: list[str]) -> None:
    """活动: running campaigns and their health, for managers, supervisors and admins."""
    if ctx.user.role not in ("manager", "supervisor", "admin"):
        await ctx.reply(render("customer_campaigns_denied"))
        return
    await ctx.reply(render("customer_campaigns", campaigns=await running_campaigns(ctx.session, ctx.user, ctx.now)))
