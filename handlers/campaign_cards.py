"""What a campaign's owner sees in WeCom: the preflight card with its launch button."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.messages import render
from bot.wecom.cards import button_card, card_task_id
from models.campaign import Campaign, offer_of
from models.outbox import send_card


async def send_preflight_card(session: AsyncSession, campaign: Campaign, public_url: str, now: datetime) -> None:
    offer = offer_of(campaign)
    rows = [
        ("目标人群", f"{campaign.audience} 人（预期至少 {campaign.expected_min}）"),
        ("发放/对照", f"{campaign.treatment} / {campaign.holdout}"),
        ("能触达", f"{campaign.reachable} 人"),
        ("优惠", f"{offer.title}，上限 {offer.cap_total} 张"),
    ]
    card = button_card(
        task_id=card_task_id("campaign", campaign.id, secrets.token_hex(4)),
        title=f"活动预检：{campaign.name}",
        desc=render("customer_preflight", problems=campaign.problems),
        rows=rows, buttons=[("发起活动", f"campaign:launch:{campaign.id}", 1)],
        url=f"{public_url.rstrip('/')}/dashboard",
    )
    await send_card(session, campaign.owner, card, now=now)
