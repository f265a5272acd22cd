"""Campaign jobs: submit each sender's mass-message task, read back confirmations and per-member results, and
remind senders who have not confirmed. WeCom is called outside any database transaction."""

from __future__ import annotations

import logging
from datetime import timedelta

from bot.deps import Deps
from bot.errors import WeComAPIError, WeComConnectionError
from bot.wecom.externalcontact import add_msg_template, remind, send_results, task_confirmed
from handlers.campaign_health import check, escalate
from models.campaign_send import (
    due_sends,
    mark_failed,
    mark_submitted,
    may_remind,
    recipients,
    record_reminder,
    record_results,
)
from scheduler.spec import JobSpec, every

log = logging.getLogger(__name__)


async def submit_sends(deps: Deps) -> int:
    """One add_msg_template per pending (campaign, sender); a refusal marks the send failed (the health check
    tells the owner), a network failure leaves it pending for the next tick. Returns how many were created."""
    if deps.wecom is None:
        return 0
    async with deps.sessions() as session:
        jobs = await due_sends(session, "pending")
    created = 0
    for job in jobs:
        async with deps.sessions() as session:
            ids = await recipients(session, job.send_id)
        try:
            msgid = await add_msg_template(deps.wecom, job.sender, ids, job.text) if ids else None
        except WeComConnectionError as err:
            log.info("campaign %s: task for %s not created yet: %s", job.campaign_key, job.sender, err)
            continue
        except WeComAPIError as err:
            async with deps.sessions() as session, session.begin():
                await mark_failed(session, job.send_id, str(err), ids)
            continue
        async with deps.sessions() as session, session.begin():
            if msgid is None:
                await mark_failed(session, job.send_id, "no reachable customers left", [])
            else:
                await mark_submitted(session, job.send_id, msgid, deps.clock.now())
                created += 1
    return created


async def follow_up_sends(deps: Deps) -> int:
    """Confirmed tasks: per-member results stored. Unconfirmed ones: a reminder when due (≤ 3 per 24 h)."""
    if deps.wecom is None:
        return 0
    async with deps.sessions() as session:
        jobs = await due_sends(session, "created")
    after = timedelta(hours=deps.config.customers.remind_after_hours)
    done = 0
    for job in jobs:
        assert job.msgid is not None
        now = deps.clock.now()
        try:
            if await task_confirmed(deps.wecom, job.msgid):
                results = await send_results(deps.wecom, job.msgid, job.sender)
                async with deps.sessions() as session, session.begin():
                    await record_results(session, job.send_id, [(r.external_userid, r.status) for r in results], now)
                done += 1
            elif may_remind(job, now, after):
                await remind(deps.wecom, job.msgid)
                async with deps.sessions() as session, session.begin():
                    await record_reminder(session, job.send_id, now)
        except (WeComConnectionError, WeComAPIError) as err:
            log.info("campaign %s: follow-up for %s failed, next tick: %s", job.campaign_key, job.sender, err)
    return done


async def campaign_tick(deps: Deps) -> None:
    await submit_sends(deps)
    await follow_up_sends(deps)


async def health_tick(deps: Deps) -> tuple[int, int]:
    """Raise / resolve campaign health alerts and fire due escalation steps: (raised, escalated)."""
    now = deps.clock.now()
    async with deps.sessions() as session, session.begin():
        raised = await check(session, deps.config, now)
        fired = await escalate(session, deps.config, now)
    return len(raised), fired


def jobs(deps: Deps) -> list[JobSpec]:
    return [
        JobSpec("customers.campaign_tick", campaign_tick, every(1)),
        JobSpec("customers.campaign_health", health_tick, every(deps.config.customers.campaign_check_minutes)),
    ]
