"""The send side of a campaign in the database: what to submit, what waits for confirmation, per-member results."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models.campaign import TASK_MAX, Campaign, CampaignMember, CampaignSend

REMIND_LIMIT = 3
REMIND_WINDOW = timedelta(hours=24)
STATUS_NAMES = {1: "sent", 2: "not_friend", 3: "quota"}


@dataclass(frozen=True)
class SendJob:
    send_id: int
    campaign_key: str
    sender: str
    text: str
    msgid: str | None
    submitted_at: datetime | None
    reminders: tuple[datetime, ...]


async def due_sends(session: AsyncSession, state: str) -> list[SendJob]:
    rows = (await session.execute(
        select(CampaignSend, Campaign.key, Campaign.text).join(Campaign, Campaign.id == CampaignSend.campaign_pk)
        .where(CampaignSend.state == state).order_by(CampaignSend.id)
    )).all()
    return [SendJob(s.id, key, s.sender, text, s.msgid, s.submitted_at,
                    tuple(datetime.fromisoformat(t) for t in s.reminders)) for s, key, text in rows]


async def recipients(session: AsyncSession, send_id: int) -> list[str]:
    send = await session.get(CampaignSend, send_id)
    assert send is not None
    stmt = select(CampaignMember.external_userid, CampaignMember.status).where(
        CampaignMember.campaign_pk == send.campaign_pk, CampaignMember.sender == send.sender,
        CampaignMember.arm == "treatment", CampaignMember.external_userid.is_not(None))
    rows = (await session.execute(stmt.order_by(CampaignMember.customer_pk)
                                  .offset(send.part * TASK_MAX).limit(TASK_MAX))).all()
    return [str(ext) for ext, status in rows if status == "pending"]


async def mark_submitted(session: AsyncSession, send_id: int, msgid: str, now: datetime) -> None:
    await session.execute(update(CampaignSend).where(CampaignSend.id == send_id, CampaignSend.state == "pending")
                          .values(state="created", msgid=msgid, submitted_at=now)
                          .execution_options(synchronize_session=False))


async def mark_failed(session: AsyncSession, send_id: int, error: str, external_userids: list[str]) -> None:
    """WeCom refused the task: its customers are failures ("error"), which the health check reports."""
    send = await session.get(CampaignSend, send_id)
    assert send is not None
    send.state, send.error = "failed", error[:256]
    for start in range(0, len(external_userids), 500):
        await session.execute(update(CampaignMember).where(
            CampaignMember.campaign_pk == send.campaign_pk, CampaignMember.sender == send.sender,
            CampaignMember.status == "pending",
            CampaignMember.external_userid.in_(external_userids[start : start + 500]),
        ).values(status="error").execution_options(synchronize_session=False))


async def record_results(session: AsyncSession, send_id: int, results: list[tuple[str, int]], now: datetime) -> None:
    """The sender confirmed: each member's WeCom status (1 sent, 2 not a friend, 3 quota) lands on their row."""
    send = await session.get(CampaignSend, send_id)
    assert send is not None
    send.state, send.confirmed_at, send.results_at = "sent", send.confirmed_at or now, now
    rows = [{"b_ext": ext, "b_status": STATUS_NAMES[status]} for ext, status in results if status in STATUS_NAMES]
    if rows:
        table = cast(Table, CampaignMember.__table__)
        await session.execute(
            update(table).where(
                table.c.campaign_pk == send.campaign_pk, table.c.sender == send.sender,
                table.c.external_userid == bindparam("b_ext"),
            ).values(status=bindparam("b_status")),
            rows,
        )


def may_remind(job: SendJob, now: datetime, after: timedelta) -> bool:
    """Pure: waited `after` since submission and since the last reminder, and fewer than 3 in the last 24 h."""
    if job.submitted_at is None or now - job.submitted_at < after:
        return False
    if job.reminders and now - max(job.reminders) < after:
        return False
    return sum(1 for t in job.reminders if now - t < REMIND_WINDOW) < REMIND_LIMIT


async def record_reminder(session: AsyncSession, send_id: int, now: datetime) -> None:
    send = await session.get(CampaignSend, send_id)
    assert send is not None
    send.reminders = [*send.reminders, now.isoformat()]
