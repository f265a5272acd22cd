"""Photo proof: download with retries, content-addressed storage, tags (time, EXIF, location, store), geofence.

A submission is a TaskPhoto row from the moment the image message arrives; the download is tried at once and,
if WeCom does not answer, again by a job until the media expires (WeCom keeps it 3 days), so none is lost.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from PIL import Image, UnidentifiedImageError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.deps import Deps
from bot.errors import DomainError, WeComAPIError, WeComError
from bot.messages import render
from models.org import Staff, Store, store_manager
from models.outbox import send_text
from models.task import TaskInstance, can_complete, complete, hhmm, open_store_tasks, open_tasks_for
from models.task_proof import TaskPhoto, haversine_m, last_location, outside_geofence

log = logging.getLogger(__name__)

MEDIA_KEPT = timedelta(days=3)  # WeCom deletes temporary media after three days
RETRY_AFTER = (60, 300, 900, 3600, 3 * 3600, 6 * 3600, 12 * 3600)  # seconds, then the last one repeats
IMMEDIATE_TRIES = 2
MEDIA_GONE = frozenset({40007})  # invalid media_id: expired or never existed, no retry brings it back
EXTENSIONS = {"image/jpeg": "jpg", "image/jpg": "jpg", "image/png": "png", "image/gif": "gif", "image/webp": "webp"}
EXIF_IFD, DATETIME_ORIGINAL, DATETIME = 0x8769, 36867, 306


def photo_path(sha256: str, content_type: str) -> str:
    """data_dir-relative: photos/ab/abcdef....jpg"""
    ext = EXTENSIONS.get(content_type.split(";")[0].strip().lower(), "jpg")
    return f"photos/{sha256[:2]}/{sha256}.{ext}"


def write_photo(data_dir: Path, content: bytes, content_type: str) -> tuple[str, str]:
    """Store the bytes once under their sha256; returns (sha256, relative path). Blocking: run in a thread."""
    sha = hashlib.sha256(content).hexdigest()
    rel = photo_path(sha, content_type)
    target = data_dir / rel
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".part")
        tmp.write_bytes(content)
        tmp.replace(target)  # atomic: a crash never leaves a half file under the final name
    return sha, rel


def exif_taken_at(content: bytes, tz: str) -> datetime | None:
    """DateTimeOriginal (else DateTime) from the EXIF block, read as store-local time; None when absent."""
    try:
        with Image.open(io.BytesIO(content)) as img:
            exif = img.getexif()
            raw = exif.get_ifd(EXIF_IFD).get(DATETIME_ORIGINAL) or exif.get(DATETIME)
    except (UnidentifiedImageError, OSError, ValueError):
        return None
    if not isinstance(raw, str):
        return None
    try:
        return datetime.strptime(raw.strip(), "%Y:%m:%d %H:%M:%S").replace(tzinfo=ZoneInfo(tz))
    except ValueError:
        return None


async def receive(session: AsyncSession, deps: Deps, user: Staff, msg_id: str, media_id: str, now: datetime) -> str:
    """An image message arrived: keep the submission, try to process it now; returns the reply."""
    photo = TaskPhoto(
        msg_id=msg_id, staff_id=user.id, store_id=user.store_id, media_id=media_id, state="pending",
        received_at=now, tries=0, next_try_at=now, flagged=False,
    )
    session.add(photo)
    await session.flush()
    reply = await process(session, deps, photo, user, now, tries=IMMEDIATE_TRIES)
    return reply or render("task_photo_pending")


async def process(
    session: AsyncSession, deps: Deps, photo: TaskPhoto, user: Staff, now: datetime, *, tries: int = 1
) -> str | None:
    """Download, store and tag one pending photo, then complete its task. None = still pending."""
    content_type, content, gone = "", b"", False
    for _ in range(tries):
        try:
            if deps.wecom is None:
                raise WeComError("no WeCom client configured")
            media = await deps.wecom.get_media(photo.media_id)
            content_type, content = media.content_type, media.content
            break
        except WeComError as err:
            photo.tries += 1
            photo.last_error = str(err)[:500]
            if isinstance(err, WeComAPIError) and err.errcode in MEDIA_GONE:
                gone = True
                break
    if not content:
        if gone or now - photo.received_at >= MEDIA_KEPT:
            photo.state = "lost"
            return render("task_photo_lost")
        photo.next_try_at = now + timedelta(seconds=RETRY_AFTER[min(photo.tries, len(RETRY_AFTER)) - 1])
        return None
    sha, rel = await asyncio.to_thread(write_photo, deps.data_dir, content, content_type)
    earlier = (await session.execute(select(TaskPhoto.id).where(TaskPhoto.sha256 == sha))).scalar_one_or_none()
    if earlier is not None:
        photo.state, photo.path = "duplicate", rel
        return render("task_photo_duplicate")
    photo.sha256, photo.path = sha, rel  # unique: if another process took the same bytes, the event replays
    store = await session.get(Store, user.store_id) if user.store_id else None
    await _tag(session, deps, photo, user, store, content)
    task = await _task_for(session, photo, user, deps.config.task_rules.location_window_minutes)
    if task is None:
        photo.state = "unassigned"
        return await _ask_which(session, user)
    return await attach(session, deps, photo, task, user, now)


async def _tag(
    session: AsyncSession, deps: Deps, photo: TaskPhoto, user: Staff, store: Store | None, content: bytes
) -> None:
    tz = store.timezone if store else "Asia/Shanghai"
    photo.exif_at = await asyncio.to_thread(exif_taken_at, content, tz)
    where = await last_location(session, user.id, photo.received_at, deps.config.task_rules.location_window_minutes)
    if where is not None:
        photo.latitude, photo.longitude, photo.located_at = where.latitude, where.longitude, where.at
        if store is not None and store.latitude is not None and store.longitude is not None:
            photo.distance_m = haversine_m(where.latitude, where.longitude, store.latitude, store.longitude)


async def _task_for(session: AsyncSession, photo: TaskPhoto, user: Staff, window_minutes: int) -> TaskInstance | None:
    """The task the user was last prompted for (a reminder inside the location window), else their oldest."""
    if photo.task_id is not None:
        task = await session.get(TaskInstance, photo.task_id)
        if task is not None and task.state == "open":
            return task
    mine = await open_tasks_for(session, user, "photo")
    since = photo.received_at - timedelta(minutes=window_minutes)
    prompted = [t for t in mine if t.reminded_at is not None and since <= t.reminded_at <= photo.received_at]
    if prompted:
        return max(prompted, key=lambda t: (t.reminded_at or since, t.id))
    return mine[0] if mine else None


async def _ask_which(session: AsyncSession, user: Staff) -> str:
    tasks = await open_store_tasks(session, user.store_id, "photo") if user.store_id else []
    tasks = [t for t in tasks if can_complete(t, user)]
    return render("task_photo_which", tasks=[(t.id, t.title) for t in tasks])


async def attach(
    session: AsyncSession, deps: Deps, photo: TaskPhoto, task: TaskInstance, user: Staff, now: datetime
) -> str:
    """Complete `task` with this stored photo; outside the geofence it is accepted, flagged, and the manager told."""
    radius = task.geofence_meters
    if radius is None:
        radius = deps.config.task_rules.default_geofence_meters
    photo.flagged = outside_geofence(photo.distance_m, radius)
    photo.task_id, photo.state = task.id, "accepted"
    result = await complete(session, task, user, now, flagged=photo.flagged)
    store = await session.get(Store, task.store_id)
    tz = store.timezone if store else "Asia/Shanghai"
    if photo.flagged and store is not None:
        manager = await store_manager(session, store.id)
        if manager is not None:
            text = render("task_photo_flagged", title=task.title, who=user.name, store=store.name,
                          distance=round(photo.distance_m or 0), radius=radius, task_id=task.id)
            await send_text(session, manager.userid, text, now=now, dedupe_key=f"task-flag:{task.id}")
    return render(
        "task_done", title=task.title, state=result.state, points=result.points, flagged=photo.flagged,
        radius=radius, photo=True, located=photo.located_at is not None,
        exif=hhmm(photo.exif_at, tz) if photo.exif_at else None,
    )


async def retry_pending(deps: Deps) -> int:
    """The job: photos whose download failed are tried again when due; the sender is told the outcome."""
    now = deps.clock.now()
    async with deps.sessions() as session, session.begin():
        stmt = select(TaskPhoto).where(TaskPhoto.state == "pending", TaskPhoto.next_try_at <= now)
        stmt = stmt.order_by(TaskPhoto.id).limit(50).with_for_update(skip_locked=True)  # two servers: each once
        photos = list((await session.execute(stmt)).scalars())
        for photo in photos:
            user = await session.get(Staff, photo.staff_id)
            if user is None:
                continue
            try:
                async with session.begin_nested():
                    reply = await process(session, deps, photo, user, now)
            except DomainError as err:  # e.g. the task was closed meanwhile: keep the photo, tell the sender
                photo.state, reply = "unassigned", err.user_message
            if reply is not None:
                await send_text(session, user.userid, reply, now=now, dedupe_key=f"task-photo:{photo.id}:{photo.state}")
    return len(photos)
