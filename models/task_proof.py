"""Proof tables for tasks: submitted photos with their tags, last known locations, broadcasts."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import ForeignKey, Index, String, Text, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base

PHOTO_STATES = ("pending", "accepted", "duplicate", "unassigned", "lost")
EARTH_RADIUS_M = 6_371_000.0


class TaskPhoto(Base):
    """One image a user sent; kept from the moment it arrives so a failed download never loses it."""

    __tablename__ = "task_photos"
    __table_args__ = (
        Index("ix_task_photos_state_next", "state", "next_try_at"),
        Index("ix_task_photos_received", "received_at"),  # retention: the oldest photos first
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    msg_id: Mapped[str] = mapped_column(String(64), unique=True)  # a replayed callback adds nothing
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), index=True)
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"))
    task_id: Mapped[int | None] = mapped_column(ForeignKey("task_instances.id"), index=True)
    media_id: Mapped[str] = mapped_column(String(256))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    sha256: Mapped[str | None] = mapped_column(String(64), unique=True)  # only accepted photos hold their hash
    path: Mapped[str | None] = mapped_column(String(256))  # relative to data_dir
    received_at: Mapped[datetime]
    exif_at: Mapped[datetime | None]  # as the camera wrote it, read in the store's time zone
    latitude: Mapped[float | None]
    longitude: Mapped[float | None]
    located_at: Mapped[datetime | None]
    distance_m: Mapped[float | None]
    flagged: Mapped[bool] = mapped_column(default=False)  # outside the store's geofence
    tries: Mapped[int] = mapped_column(default=0)
    next_try_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)


class UserLocation(Base):
    """Where a user was, from a location message or a LOCATION event; the newest tags later photos."""

    __tablename__ = "user_locations"
    __table_args__ = (
        Index("ix_user_locations_staff_at", "staff_id", "at"),
        Index("ix_user_locations_at", "at"),  # retention: the oldest locations first
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    latitude: Mapped[float]
    longitude: Mapped[float]
    source: Mapped[str] = mapped_column(String(16))  # message | report
    label: Mapped[str | None] = mapped_column(String(256))
    at: Mapped[datetime]


class TaskBroadcast(Base):
    """A one-off task sent to every matching person; its instances carry template_key broadcast-<id>."""

    __tablename__ = "task_broadcasts"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(128))
    body: Mapped[str] = mapped_column(Text, default="")
    proof: Mapped[str] = mapped_column(String(16))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]


def broadcast_key(broadcast_id: int) -> str:
    return f"broadcast-{broadcast_id}"


def haversine_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(a))


def outside_geofence(distance_m: float | None, radius_m: int) -> bool:
    """A radius of 0 means no check; an unknown position is not a breach (it is tagged as unknown)."""
    return radius_m > 0 and distance_m is not None and distance_m > radius_m


async def remember_location(
    session: AsyncSession, staff_id: int, latitude: float, longitude: float, *, source: str, at: datetime,
    label: str | None = None,
) -> UserLocation:
    row = UserLocation(staff_id=staff_id, latitude=latitude, longitude=longitude, source=source, label=label, at=at)
    session.add(row)
    await session.flush()
    return row


async def last_location(
    session: AsyncSession, staff_id: int, at: datetime, window_minutes: int
) -> UserLocation | None:
    """The newest location of this user in the window before `at` (a later one does not tag an earlier photo)."""
    stmt = (
        select(UserLocation)
        .where(
            UserLocation.staff_id == staff_id,
            UserLocation.at <= at,
            UserLocation.at >= at - timedelta(minutes=window_minutes),
        )
        .order_by(UserLocation.at.desc(), UserLocation.id.desc())
        .limit(1)
    )
    return (await session.execute(stmt)).scalar_one_or_none()
