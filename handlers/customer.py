"""The customer loop in chat: WeCom's external-contact changes, `客户 <会员号|尾号>` and `活动`."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from bot.deps import Deps
from bot.events import ExternalContactChange
from handlers.router import Router
from models.customer import contact_changed

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
