"""Transfer jobs: approval reminders and escalation, overdue-receipt escalation to the supervisor, then the admin.

Which steps are due is a pure function of (now, transfer, waits); each step fires once per transfer because
it is recorded in transfer_steps (unique per transfer and step) in the same transaction as its messages.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.deps import Deps
from bot.messages import render
from handlers import transfer_notify as notify
from models.org import admins, region_supervisor
from models.transfer import Transfer, mark_step
from models.transfer_waits import (
    APPROVAL_ESCALATE,
    APPROVAL_REMIND,
    RECEIPT_ADMIN,
    RECEIPT_OVERDUE,
    Waits,
    due_steps,
)
from scheduler.spec import JobSpec, every

__all__ = ["APPROVAL_ESCALATE", "APPROVAL_REMIND", "RECEIPT_ADMIN", "RECEIPT_OVERDUE", "Waits", "due_steps"]


def next_due(transfer: Transfer, waits: Waits) -> datetime | None:
    """When the last step of the current state falls due (for the dashboard); None once nothing is pending."""
    if transfer.state == "requested":
        return transfer.created_at + waits.escalate
    if transfer.state == "shipped" and transfer.shipped_at is not None:
        return transfer.shipped_at + waits.receipt + waits.receipt_admin
    return None


def _hours(since: datetime | None, now: datetime) -> int:
    return int((now - since).total_seconds() // 3600) if since else 0


async def _fire(session: AsyncSession, t: Transfer, step: str, now: datetime) -> None:
    source, dest = await notify.stores_of(session, t)
    text_args = {"id": t.id, "source": notify.label(source), "dest": notify.label(dest),
                 "summary": await notify.summary(session, t, "shipped" if t.state == "shipped" else "qty")}
    if step == APPROVAL_REMIND:
        people = await notify.pending_approvers(session, t)
        cards = await notify.cards_of(session, t, "approve")
        stale = [p for p in people if p.userid not in cards or not notify.code_usable(cards[p.userid], now)]
        # a card older than WeCom's 72 hours is replaced by a fresh one rather than relied upon
        await notify.send_approval_cards(session, t, now, to=stale, suffix="r")
        text = render("transfer_approval_remind", hours=_hours(t.created_at, now), **text_args)
        await notify.tell(session, [p.userid for p in people], text, now, f"{t.id}:{step}")
    elif step == APPROVAL_ESCALATE:
        pending = await notify.pending_approvers(session, t)
        bosses = await admins(session)
        await notify.send_approval_cards(session, t, now, to=bosses, suffix="esc")
        text = render("transfer_approval_escalate", hours=_hours(t.created_at, now),
                      approvers=notify.names(pending), **text_args)
        await notify.tell(session, [p.userid for p in bosses], text, now, f"{t.id}:{step}")
    else:
        sup = await region_supervisor(session, dest.region_id) if step == RECEIPT_OVERDUE else None
        people = [sup] if sup else await admins(session)
        text = render("transfer_receipt_overdue", hours=_hours(t.shipped_at, now), **text_args)
        await notify.tell(session, [p.userid for p in people], text, now, f"{t.id}:{step}")


async def check_transfers(deps: Deps) -> int:
    """Fire every due reminder / escalation once; returns how many steps fired. Safe to run concurrently."""
    now = deps.clock.now()
    waits = Waits.from_rules(deps.config.rules)
    async with deps.sessions() as session:
        open_ids = select(Transfer.id).where(Transfer.state.in_(("requested", "shipped"))).order_by(Transfer.id)
        ids = list((await session.execute(open_ids)).scalars())
    fired = 0
    for transfer_id in ids:
        async with deps.sessions() as session, session.begin():
            # the row lock (PostgreSQL) makes a receipt committing now wait, or be seen before we decide
            locked = select(Transfer).where(Transfer.id == transfer_id).with_for_update()
            t = (await session.execute(locked)).scalar_one_or_none()
            if t is None:
                continue
            for step in due_steps(now, t, waits):
                if await mark_step(session, t.id, step, now):
                    await _fire(session, t, step, now)
                    fired += 1
    return fired


def jobs(deps: Deps) -> list[JobSpec]:
    return [JobSpec("transfers.check", check_transfers, every(deps.config.rules.transfer_check_minutes))]
