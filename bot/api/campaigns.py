"""/api/campaigns: preflight (create or revise a draft), launch once, and the closed-loop report."""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from bot.api import ApiError, read_body
from bot.errors import UnknownEntity
from bot.keys import DEPS
from handlers.campaign_cards import send_preflight_card
from handlers.campaign_health import check
from models.campaign import Campaign, campaign_by_key, launch, preflight
from models.campaign_report import report
from models.org import staff_by_userid

routes = web.RouteTableDef()


class OfferIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=64)
    kind: Literal["discount", "amount", "gift"]
    value: float = Field(ge=0, le=1_000_000)
    cap_total: int = Field(ge=0, le=10_000_000)
    per_customer: int = Field(1, ge=1, le=100)
    valid_days: int = Field(14, ge=1, le=365)


class CampaignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    name: str = Field(min_length=1, max_length=64)
    segment: str = Field(min_length=1, max_length=64)
    text: str = Field(min_length=1, max_length=2000)
    offer: OfferIn
    holdout_percent: int = Field(10, ge=0, le=90)
    attribution_days: int = Field(14, ge=1, le=90)
    expected_min: int = Field(0, ge=0)
    owner: str = Field(min_length=1, max_length=64)


def preflight_body(campaign: Campaign) -> dict[str, Any]:
    return {"key": campaign.key, "name": campaign.name, "state": campaign.state, "audience": campaign.audience,
            "treatment": campaign.treatment, "holdout": campaign.holdout, "reachable": campaign.reachable,
            "problems": list(campaign.problems),
            "launched_at": campaign.launched_at.isoformat() if campaign.launched_at else None}


@routes.post("/api/campaigns")
async def post_campaign(request: web.Request) -> web.Response:
    """Create a draft (201) or revise one (200), run the preflight and send the owner the card to launch it."""
    deps = request.app[DEPS]
    body = await read_body(request, CampaignIn)
    now = deps.clock.now()
    values = {"name": body.name, "segment_key": body.segment, "text": body.text, "offer": body.offer.model_dump(),
              "holdout_percent": body.holdout_percent, "attribution_days": body.attribution_days,
              "expected_min": body.expected_min, "owner": body.owner}
    async with deps.sessions() as session, session.begin():
        if await staff_by_userid(session, body.owner) is None:
            raise ApiError(422, f"owner: unknown staff member {body.owner!r}")
        campaign = (await session.execute(select(Campaign).where(Campaign.key == body.key))).scalar_one_or_none()
        status = 200
        if campaign is None:
            campaign = Campaign(key=body.key, state="draft", problems=[], created_at=now, **values)
            session.add(campaign)
            status = 201
        elif campaign.state != "draft":
            raise ApiError(409, f"key: campaign {body.key!r} is already {campaign.state}; use a new key")
        else:
            for name, value in values.items():
                setattr(campaign, name, value)
        try:
            await preflight(session, campaign, deps.config.customers, now)
        except UnknownEntity as err:
            raise ApiError(422, err.user_message) from err
        await session.flush()
        await send_preflight_card(session, campaign, deps.config.server.public_url, now)
        answer = preflight_body(campaign)
    return web.json_response(answer, status=status)


@routes.get("/api/campaigns/{key}")
async def get_campaign(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    async with deps.sessions() as session:
        return web.json_response(preflight_body(await campaign_by_key(session, request.match_info["key"])))


@routes.post("/api/campaigns/{key}/launch")
async def launch_campaign(request: web.Request) -> web.Response:
    """Launch once: a second call answers 200 with "launched": false and changes nothing."""
    deps = request.app[DEPS]
    now = deps.clock.now()
    async with deps.sessions() as session, session.begin():
        campaign = await campaign_by_key(session, request.match_info["key"])
        launched = await launch(session, campaign.id, "api", deps.config.customers, now)
        if launched:
            await check(session, deps.config, now)  # what is wrong at launch is told at once
        await session.refresh(campaign)
        answer = {**preflight_body(campaign), "launched": launched}
    return web.json_response(answer)


@routes.get("/api/campaigns/{key}/report")
async def campaign_report(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    async with deps.sessions() as session:
        return web.json_response(await report(session, await campaign_by_key(session, request.match_info["key"])))
