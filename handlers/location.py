"""Location messages and LOCATION events: remembered to tag later photos."""

from __future__ import annotations

from bot.events import LocationMessage, LocationReport
from bot.messages import render
from handlers.router import Context, Router
from models.task_proof import remember_location

router = Router("location")


LABEL_CHARS = 256  # user_locations.label


def on_earth(latitude: float, longitude: float) -> bool:
    """A real position: finite, latitude within ±90 and longitude within ±180 (NaN fails every comparison)."""
    return -90 <= latitude <= 90 and -180 <= longitude <= 180


@router.on(LocationMessage)
async def shared_location(event: LocationMessage, ctx: Context) -> None:
    if not on_earth(event.latitude, event.longitude):
        await ctx.reply(render("task_location_bad"))
        return
    await remember_location(ctx.session, ctx.user.id, event.latitude, event.longitude, source="message",
                            at=ctx.now, label=event.label[:LABEL_CHARS] or None)
    await ctx.reply(render("task_location_saved", minutes=ctx.deps.config.task_rules.location_window_minutes))


@router.on(LocationReport)
async def reported_location(event: LocationReport, ctx: Context) -> None:
    """WeCom reports this silently when the app opens; no reply (the user did not write anything)."""
    if on_earth(event.latitude, event.longitude):
        await remember_location(ctx.session, ctx.user.id, event.latitude, event.longitude, source="report",
                                at=ctx.now)
