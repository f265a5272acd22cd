"""Campaigns: preflight (audience, split, reach, problems), one launch (state guard), the members' arms and sends."""

from __future__ import annotations

import hashlib
import secrets
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ForeignKey, Numeric, String, UniqueConstraint, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from bot.config_customers import CustomersSettings
from bot.errors import InvalidState, UnknownEntity
from models.base import Base
from models.customer import Customer
from models.segment import Segment, SegmentMember, describe

CHUNK = 5000
TASK_MAX = 10_000  # customers per add_msg_template task (WeCom's limit)
SMALL_HOLDOUT = 30  # fewer holdout members than this and the lift is noise


class Campaign(Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    segment_key: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(String(2000))
    offer: Mapped[dict[str, Any]]
    holdout_percent: Mapped[int]
    attribution_days: Mapped[int]
    expected_min: Mapped[int]
    owner: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="draft")  # draft | launched
    audience: Mapped[int] = mapped_column(default=0)
    treatment: Mapped[int] = mapped_column(default=0)
    holdout: Mapped[int] = mapped_column(default=0)
    reachable: Mapped[int] = mapped_column(default=0)
    problems: Mapped[list[Any]]
    redeemed: Mapped[int] = mapped_column(default=0)  # coupon uses so far, guarded against offer.cap_total
    created_at: Mapped[datetime]
    launched_at: Mapped[datetime | None]
    launched_by: Mapped[str | None] = mapped_column(String(64))


class CampaignMember(Base):
    """A member's arm, frozen at launch; status follows the send: unreachable | pending | sent | not_friend |
    quota | error (WeCom refused the task)."""

    __tablename__ = "campaign_members"

    campaign_pk: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), primary_key=True)
    customer_pk: Mapped[int] = mapped_column(ForeignKey("customers.id"), primary_key=True, index=True)
    arm: Mapped[str] = mapped_column(String(16))  # treatment | holdout
    sender: Mapped[str | None] = mapped_column(String(64))
    external_userid: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))


class CampaignSend(Base):
    """One add_msg_template task per (campaign, sender, part of ≤ 10,000 customers): pending → created (waits for
    the sender) → sent, or failed when WeCom refused it."""

    __tablename__ = "campaign_sends"
    __table_args__ = (UniqueConstraint("campaign_pk", "sender", "part"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_pk: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    sender: Mapped[str] = mapped_column(String(64))
    part: Mapped[int] = mapped_column(default=0)  # the sender's customers in order, 10,000 per task
    members: Mapped[int]
    state: Mapped[str] = mapped_column(String(16), default="pending")
    msgid: Mapped[str | None] = mapped_column(String(128))
    error: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime]
    submitted_at: Mapped[datetime | None]
    confirmed_at: Mapped[datetime | None]
    results_at: Mapped[datetime | None]
    reminders: Mapped[list[Any]]  # ISO times of remind_groupmsg_send calls


class Coupon(Base):
    """One code per treatment member; uses ≤ max_uses (offer.per_customer); the campaign's cap is separate."""

    __tablename__ = "coupons"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    campaign_pk: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    customer_pk: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    issued_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    uses: Mapped[int] = mapped_column(default=0)
    max_uses: Mapped[int] = mapped_column(default=1)


class CouponRedemption(Base):
    __tablename__ = "coupon_redemptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    coupon_pk: Mapped[int] = mapped_column(ForeignKey("coupons.id"), index=True)
    campaign_pk: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    sale_id: Mapped[str] = mapped_column(String(128), unique=True)
    at: Mapped[datetime]
    discount: Mapped[Decimal] = mapped_column(Numeric(14, 2))


@dataclass(frozen=True)
class Offer:
    title: str
    kind: str
    value: float
    cap_total: int
    per_customer: int
    valid_days: int


def offer_of(campaign: Campaign) -> Offer:
    o = campaign.offer
    return Offer(str(o["title"]), str(o["kind"]), float(o["value"]), int(o["cap_total"]), int(o["per_customer"]),
                 int(o["valid_days"]))


def arm_of(campaign_key: str, customer_id: str, holdout_percent: int) -> str:
    """Stable split: the same member lands in the same arm of the same campaign on every run and machine."""
    digest = hashlib.sha256(f"{campaign_key}:{customer_id}".encode()).digest()
    return "holdout" if int.from_bytes(digest[:8], "big") % 100 < holdout_percent else "treatment"


@dataclass(frozen=True)
class _Audience:
    rows: list[tuple[int, str, str | None, str | None]]  # customer pk, id, external_userid, follow_userid


async def _audience(session: AsyncSession, segment: Segment) -> _Audience:
    stmt = (select(Customer.id, Customer.customer_id, Customer.external_userid, Customer.follow_userid)
            .join(SegmentMember, SegmentMember.customer_pk == Customer.id)
            .where(SegmentMember.segment_pk == segment.id).order_by(Customer.id))
    return _Audience([(int(a), str(b), c, d) for a, b, c, d in (await session.execute(stmt)).all()])


async def preflight(session: AsyncSession, campaign: Campaign, cfg: CustomersSettings, now: datetime) -> None:
    """Count the audience, the split and who can be reached, and name what would make the campaign fail."""
    segment = (await session.execute(select(Segment).where(Segment.key == campaign.segment_key))).scalar_one_or_none()
    if segment is None:
        raise UnknownEntity("segment", campaign.segment_key, f"segment: unknown segment {campaign.segment_key!r}")
    audience = await _audience(session, segment)
    arms = [arm_of(campaign.key, cid, campaign.holdout_percent) for _, cid, _, _ in audience.rows]
    treatment = [row for row, arm in zip(audience.rows, arms, strict=True) if arm == "treatment"]
    reachable = sum(1 for _, _, ext, follow in treatment if ext and follow)
    campaign.audience, campaign.treatment = len(audience.rows), len(treatment)
    campaign.holdout, campaign.reachable = len(audience.rows) - len(treatment), reachable
    offer = offer_of(campaign)
    problems: list[str] = []
    if campaign.audience < campaign.expected_min:
        problems.append(f"目标人群只有 {campaign.audience} 人，低于预期的 {campaign.expected_min} 人："
                        f"检查人群「{segment.name}」的规则（例如是否只选了新会员）。")
    if offer.cap_total < campaign.treatment:
        problems.append(f"券的领取上限 {offer.cap_total} 张，少于发放人数 {campaign.treatment}："
                        f"放开领取上限到至少 {campaign.treatment} 张。")
    if reachable < campaign.treatment:
        problems.append(f"{campaign.treatment - reachable} 位会员没有加店员企业微信，收不到消息："
                        "请店员先加好友，或换一种方式通知。")
    if campaign.holdout_percent and campaign.holdout < SMALL_HOLDOUT:
        problems.append(f"对照组只有 {campaign.holdout} 人，效果对比不可靠：扩大人群或提高对照比例。")
    if describe(segment, [], now, cfg)["stale"] or segment.error:
        problems.append(f"人群「{segment.name}」不是最新的：先重新计算人群再发。")
    campaign.problems = problems


def new_code(campaign_key: str) -> str:
    prefix = "".join(ch for ch in campaign_key.upper() if ch.isalnum())[:6] or "CP"
    return f"{prefix}-{secrets.token_hex(4).upper()}"


async def launch(session: AsyncSession, campaign_id: int, actor: str, cfg: CustomersSettings,
                 now: datetime) -> bool:
    """draft → launched, once (a conditional UPDATE: a second click or call changes nothing, returns False).
    Freezes the arms, issues one coupon per treatment member, and queues one send per staff member."""
    won = await session.execute(
        update(Campaign).where(Campaign.id == campaign_id, Campaign.state == "draft")
        .values(state="launched", launched_at=now, launched_by=actor).execution_options(synchronize_session=False)
    )
    if won.rowcount != 1:  # type: ignore[attr-defined]
        if (await session.get(Campaign, campaign_id)) is None:
            raise UnknownEntity("campaign", campaign_id)
        return False
    campaign = (await session.execute(select(Campaign).where(Campaign.id == campaign_id))).scalar_one()
    await session.refresh(campaign)
    await preflight(session, campaign, cfg, now)  # the audience as it is at launch, not as it was at preflight
    segment = (await session.execute(select(Segment).where(Segment.key == campaign.segment_key))).scalar_one()
    offer = offer_of(campaign)
    members: list[dict[str, Any]] = []
    coupons: list[dict[str, Any]] = []
    by_sender: dict[str, int] = defaultdict(int)
    expires = now + timedelta(days=offer.valid_days)
    for pk, cid, ext, follow in (await _audience(session, segment)).rows:
        arm = arm_of(campaign.key, cid, campaign.holdout_percent)
        reachable = bool(ext and follow)
        status = "pending" if arm == "treatment" and reachable else ("unreachable" if arm == "treatment" else "")
        members.append({"campaign_pk": campaign.id, "customer_pk": pk, "arm": arm, "sender": follow,
                        "external_userid": ext, "status": status})
        if arm == "treatment":
            coupons.append({"code": new_code(campaign.key), "campaign_pk": campaign.id, "customer_pk": pk,
                            "issued_at": now, "expires_at": expires, "uses": 0, "max_uses": offer.per_customer})
            if reachable and follow:
                by_sender[follow] += 1
    for table, rows in ((CampaignMember, members), (Coupon, coupons)):
        for start in range(0, len(rows), CHUNK):
            await session.execute(insert(table), rows[start : start + CHUNK])
    session.add_all(
        CampaignSend(campaign_pk=campaign.id, sender=sender, part=part, members=min(TASK_MAX, n - part * TASK_MAX),
                     state="pending", created_at=now, reminders=[])
        for sender, n in sorted(by_sender.items()) for part in range((n + TASK_MAX - 1) // TASK_MAX)
    )
    return True


async def campaign_by_key(session: AsyncSession, key: str) -> Campaign:
    campaign = (await session.execute(select(Campaign).where(Campaign.key == key))).scalar_one_or_none()
    if campaign is None:
        raise UnknownEntity("campaign", key, f"找不到活动 {key}")
    return campaign


def require_draft(campaign: Campaign) -> None:
    if campaign.state != "draft":
        raise InvalidState(f"campaign {campaign.key!r} is {campaign.state}, not draft",
                           f"活动「{campaign.name}」已发起，不能再修改。")
