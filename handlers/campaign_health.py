"""Campaign health: audience, delivery failures, unconfirmed senders, coupon cap, redemptions against forecast.

One open alert per (campaign, kind) by the unique key with nullable open_key (as models/alert.py); new alerts go to
the owner through the stock alerts' delivery (models.alert.AlertNotice → handlers/alert_delivery.py: held through
quiet hours, merged into the person's digest of the window: a text saying what to do, and the card to acknowledge); an
unacknowledged alert escalates along [alerts.escalation] "campaign" (else "default") — the step that says
"manager" is the owner, then the owner's region supervisor, then the admins. A cleared condition resolves it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.messages import render
from models.alert import add_campaign_notice, hold_until
from models.base import insert_for
from models.campaign import Campaign, CampaignMember, CampaignSend, offer_of
from models.campaign_alert import CampaignAlert as CampaignAlert
from models.campaign_alert import acknowledge as acknowledge
from models.campaign_alert import open_alerts as open_alerts
from models.org import Staff, Store, admins, region_supervisor, staff_by_userid

FAILED = ("not_friend", "quota", "error")


@dataclass(frozen=True)
class Finding:
    kind: str
    message: str


async def _findings(session: AsyncSession, settings: Settings, c: Campaign, now: datetime) -> list[Finding]:
    """Every unhealthy condition of one launched campaign, each with the sentence that says what to do."""
    cfg = settings.customers
    out: list[Finding] = []
    if c.audience < c.expected_min:
        out.append(Finding("audience_low", render("customer_alert", kind="audience_low", c=c)))
    statuses = dict((await session.execute(
        select(CampaignMember.status, func.count()).where(CampaignMember.campaign_pk == c.id,
                                                          CampaignMember.arm == "treatment")
        .group_by(CampaignMember.status))).all())
    failed = {k: int(statuses.get(k, 0)) for k in FAILED if statuses.get(k)}
    attempted = sum(failed.values()) + int(statuses.get("sent", 0))
    if attempted and sum(failed.values()) / attempted > cfg.failure_share_alert:
        by_sender = (await session.execute(
            select(CampaignMember.sender, func.count()).where(
                CampaignMember.campaign_pk == c.id, CampaignMember.status.in_(FAILED))
            .group_by(CampaignMember.sender).order_by(func.count().desc(), CampaignMember.sender).limit(1))).first()
        out.append(Finding("failure_share", render(
            "customer_alert", kind="failure_share", c=c, failed=failed, total=sum(failed.values()),
            attempted=attempted, worst=await _name(session, by_sender[0]) if by_sender else "",
            worst_n=by_sender[1] if by_sender else 0)))
    waiting_since = now - timedelta(hours=cfg.confirm_alert_hours)
    late = list((await session.execute(
        select(CampaignSend.sender).where(CampaignSend.campaign_pk == c.id, CampaignSend.state == "created",
                                          CampaignSend.submitted_at <= waiting_since)
        .order_by(CampaignSend.sender))).scalars())
    if late:
        names = [await _name(session, u) for u in late]
        out.append(Finding("unconfirmed", render("customer_alert", kind="unconfirmed", c=c, names=names,
                                                 hours=cfg.confirm_alert_hours)))
    offer = offer_of(c)
    if offer.cap_total and c.redeemed >= offer.cap_total:
        out.append(Finding("cap_100", render("customer_alert", kind="cap_100", c=c, cap=offer.cap_total)))
    elif offer.cap_total and c.redeemed >= 0.8 * offer.cap_total:
        out.append(Finding("cap_80", render("customer_alert", kind="cap_80", c=c, cap=offer.cap_total)))
    if c.launched_at is not None and now - c.launched_at >= timedelta(hours=24):
        forecast = int(statuses.get("sent", 0)) * cfg.redemption_forecast_share
        if forecast >= 1 and c.redeemed < forecast * cfg.redemption_alert_ratio:
            out.append(Finding("redemption_low", render("customer_alert", kind="redemption_low", c=c,
                                                        forecast=round(forecast))))
    return out


async def _name(session: AsyncSession, userid: str | None) -> str:
    person = await staff_by_userid(session, userid) if userid else None
    return person.name if person else (userid or "")


async def _owner_tz(session: AsyncSession, owner: Staff | None) -> str:
    if owner is None or owner.store_id is None:
        return "Asia/Shanghai"
    return (await session.execute(select(Store.timezone).where(Store.id == owner.store_id))).scalar_one()


async def check(session: AsyncSession, settings: Settings, now: datetime) -> list[int]:
    """Raise what is newly wrong, resolve what cleared, tell each owner once; returns the ids raised now."""
    raised: dict[str, list[tuple[int, str]]] = defaultdict(list)
    chain = settings.alerts.chain_for("campaign")
    campaigns = (await session.execute(select(Campaign).where(Campaign.state == "launched"))).scalars().all()
    for c in campaigns:
        findings = {f.kind: f for f in await _findings(session, settings, c, now)}
        await session.execute(
            update(CampaignAlert).where(CampaignAlert.campaign_pk == c.id, CampaignAlert.open_key.is_not(None),
                                        CampaignAlert.kind.not_in(list(findings) or [""]))
            .values(state="resolved", open_key=None, resolved_at=now, esc_due_at=None)
            .execution_options(synchronize_session=False))
        for f in findings.values():
            nxt = now + timedelta(minutes=chain[1].after_minutes) if len(chain) > 1 else None
            new_id = (await session.execute(
                insert_for(session)(CampaignAlert).values(
                    campaign_pk=c.id, kind=f.kind, state="open", open_key=1, message=f.message, created_at=now,
                    esc_step=1, esc_due_at=nxt)
                .on_conflict_do_nothing(index_elements=["campaign_pk", "kind", "open_key"])
                .returning(CampaignAlert.id))).scalar_one_or_none()
            if new_id is not None:
                raised[c.owner].append((new_id, f.message))
    for owner, items in raised.items():
        await _tell(session, settings, owner, [i for i, _ in items], now, step=0)
    return [i for items in raised.values() for i, _ in items]


async def _tell(session: AsyncSession, settings: Settings, userid: str, ids: list[int], now: datetime,
                step: int) -> None:
    """Queue the alerts for `userid` through the stock alerts' delivery: held through the owner's quiet hours, then
    merged into that person's digest of the window (handlers/alert_delivery.py: the text saying what to do for each,
    and one card that acknowledges)."""
    person = await staff_by_userid(session, userid)
    due = hold_until(settings.alerts, await _owner_tz(session, person), now)
    for alert_id in ids:
        await add_campaign_notice(session, alert_id, step, userid, now, due)


async def escalate(session: AsyncSession, settings: Settings, now: datetime) -> int:
    """Fire the due chain steps of open, unacknowledged alerts (claimed by a conditional UPDATE on esc_step)."""
    chain = settings.alerts.chain_for("campaign")
    due = (await session.execute(
        select(CampaignAlert, Campaign).join(Campaign, Campaign.id == CampaignAlert.campaign_pk)
        .where(CampaignAlert.state == "open", CampaignAlert.esc_due_at <= now).order_by(CampaignAlert.id)
    )).all()
    fired = 0
    for alert, campaign in due:
        step = alert.esc_step
        if step >= len(chain):
            continue
        nxt = alert.created_at + timedelta(minutes=chain[step + 1].after_minutes) if step + 1 < len(chain) else None
        claimed = await session.execute(
            update(CampaignAlert).where(CampaignAlert.id == alert.id, CampaignAlert.esc_step == step,
                                        CampaignAlert.state == "open")
            .values(esc_step=step + 1, esc_due_at=nxt).execution_options(synchronize_session=False))
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            continue
        for userid in await _chain_people(session, campaign.owner, chain[step].to):
            await _tell(session, settings, userid, [alert.id], now, step=step)
        fired += 1
    return fired


async def _chain_people(session: AsyncSession, owner: str, to: str) -> list[str]:
    person = await staff_by_userid(session, owner)
    if to == "manager":
        return [owner]
    if to == "supervisor":
        region = person.region_id if person else None
        sup = await region_supervisor(session, region) if region is not None else None
        return [sup.userid] if sup and sup.userid != owner else []
    return [a.userid for a in await admins(session) if a.userid != owner]
