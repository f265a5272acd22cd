"""The demo's customer loop: every lifecycle stage populated, the seed's high-potential rule non-empty, and two
launched campaigns, the one that reproduces the seed's 0.3% case caught and told to its owner."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import FakeClock
from bot.demo.customers import HISTORY_DAYS, OWNER
from bot.demo.run import bind, running_demo
from bot.keys import DEPS
from bot.sandbox.externalcontact import confirm, contacts_of
from handlers.campaign_health import CampaignAlert
from models.campaign import Campaign
from models.campaign_report import report
from models.customer import Customer
from models.customer_stage_day import CustomerStageDay
from models.outbox import OutboundMessage
from models.segment import Segment
from scheduler.campaign_jobs import campaign_tick
from scheduler.stock_jobs import alert_tick
from tests.conftest import TEST_ADMIN_TOKEN, AppClient, auth
from tests.customers.test_campaigns import campaign_body, forty_members
from tests.factories import Chain

START = datetime(2026, 11, 24, 6, 0, 5, tzinfo=UTC)


async def test_demo_members_cover_every_stage_and_the_seed_case_is_caught(tmp_path: Path) -> None:
    clock = FakeClock(START)
    bot_sock, sandbox_sock = bind(0, 0)
    async with running_demo(tmp_path, bot_sock, sandbox_sock, clock=clock) as run:
        deps = run.bot_app[DEPS]
        clock.advance(seconds=deps.config.alerts.digest_seconds)  # campaign alerts go out in the next digest
        await alert_tick(deps)
        async with deps.sessions() as s:
            stages = dict((await s.execute(select(Customer.stage, func.count()).group_by(Customer.stage))).all())
            segments = dict((await s.execute(select(Segment.key, Segment.count))).all())
            alerts = (await s.execute(select(CampaignAlert.kind, Campaign.key)
                                      .join(Campaign, Campaign.id == CampaignAlert.campaign_pk))).all()
            told = (await s.execute(select(func.count()).select_from(OutboundMessage)
                                    .where(OutboundMessage.recipient == OWNER))).scalar_one()
            h = CustomerStageDay
            history = (await s.execute(select(h.day, h.stage, func.sum(h.members)).group_by(h.day, h.stage)
                                       .order_by(h.day))).all()
        days = sorted({d for d, _, _ in history})
        assert len(days) == HISTORY_DAYS + 1 and (days[-1] - days[0]).days == HISTORY_DAYS  # weeks of history
        totals = {d: sum(int(n) for dd, _, n in history if dd == d) for d in days}
        assert totals[days[-1]] == sum(stages.values()) and totals[days[0]] < totals[days[-1]]  # members joined
        assert {st: int(n) for d, st, n in history if d == days[-1]} == stages  # today's is the real rebuild's
        assert len({tuple(sorted((st, int(n)) for dd, st, n in history if dd == d)) for d in days}) > 5  # a trend
        assert set(stages) == {"new", "active", "high_potential", "at_risk", "dormant", "lost"}
        assert all(n >= 10 for n in stages.values()), stages
        assert segments["high_potential"] == stages["high_potential"] > 0
        assert alerts == [("audience_low", "member20")] and told >= 2  # the digest text and its card
        await campaign_tick(deps)
        tasks = list(contacts_of(run.sandbox).tasks.values())
        assert tasks
        confirm(run.sandbox, tasks[0].msgid)
        await campaign_tick(deps)
        async with deps.sessions() as s:
            trial = (await s.execute(select(Campaign).where(Campaign.key == "trial"))).scalar_one()
            numbers = await report(s, trial)
        assert numbers["state"] == "launched" and numbers["sent"] + numbers["waiting"] > 0


async def test_customer_board_shows_stages_segments_and_campaign_health(
    client: AppClient, sessions: async_sessionmaker[AsyncSession], chain: Chain, clock: FakeClock,
) -> None:
    await forty_members(client, sessions, chain, clock)
    await client.post("/api/campaigns", json=campaign_body(expected_min=100), headers=auth())
    await client.post("/api/campaigns/spring/launch", headers=auth())
    assert (await client.get("/dashboard/customers")).status == 401
    r = await client.get("/dashboard/customers", params={"token": TEST_ADMIN_TOKEN})
    page = await r.text()
    assert r.status == 200
    assert "全部会员" in page and "春季会员日" in page and "低于预期的 100 人" in page and "ROI" in page
    assert "None" not in page and "launched" not in page and "not_friend" not in page  # words, not codes
    assert "进行中" in page and "样本太小" in page and "—" in page  # 40 members: lift and ROI are not claimed
