"""Photo proof: download with retries, content-addressed storage, tags (time, EXIF, location, store), geofence.

A submission is a TaskPhoto row from the moment the image message arrives (the handler only records it); the
photo worker (PhotoWorker, registered in bot/app.py) downloads it outside any transaction, so a slow media server
stalls no chat, then stores it and completes the task in its own transaction; a failed download is retried until
the media expires (WeCom keeps it 3 days), so none is lost.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from aiohttp import web
from PIL import Image, UnidentifiedImageError
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.deps import Deps
from bot.errors import DomainError, WeComAPIError, WeComError
from bot.keys import DEPS, PHOTOS
from bot.messages import render
from bot.queues.loop import DrainLoop
from bot.wecom.cards import button_card, card_task_id
from models.org import Staff, Store, store_manager
from models.outbox import send_card, send_text
from models.task import TaskInstance, can_complete, complete, hhmm, open_store_tasks, open_tasks_for
from models.task_proof import TaskPhoto, haversine_m, last_location, outside_geofence

log = logging.getLogger(__name__)

MEDIA_KEPT = timedelta(days=3)  # WeCom deletes temporary media after three days
RETRY_AFTER = (60, 300, 900, 3600, 3 * 3600, 6 * 3600, 12 * 3600)  # seconds, then the last one repeats
IMMEDIATE_TRIES = 2
LEASE = timedelta(minutes=10)  # a claimed photo is tried again after this if its worker died
CONCURRENT_DOWNLOADS = 4
MEDIA_GONE = frozenset({40007})  # invalid media_id: expired or never existed, no retry brings it back
EXTENSIONS = {"image/jpeg": "jpg", "image/jpg": "jpg", "image/png": "png", "image/gif": "gif", "image/webp": "webp"}
EXIF_IFD, DATETIME_ORIGINAL, DATETIME = 0x8769, 36867, 306
MAX_CHOICES = 6  # WeCom's button limit on one card; more tasks are reached with 交图


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


async def receive(session: AsyncSession, user: Staff, msg_id: str, media_id: str, now: datetime) -> TaskPhoto:
    """An image message arrived: keep the submission, due for the photo worker now. Nothing is downloaded here:
    the inbox worker (one transaction per event, one at a time) must not wait on WeCom's media server."""
    photo = TaskPhoto(
        msg_id=msg_id, staff_id=user.id, store_id=user.store_id, media_id=media_id, state="pending",
        received_at=now, tries=0, next_try_at=now, flagged=False,
    )
    session.add(photo)
    await session.flush()
    return photo


@dataclass(frozen=True)
class Download:
    content_type: str = ""
    content: bytes = b""
    failures: tuple[str, ...] = ()
    gone: bool = False  # WeCom says the media does not exist (expired): no retry brings it back


async def download(deps: Deps, media_id: str, tries: int) -> Download:
    """Fetch the media with up to `tries` tries, outside any transaction."""
    failures: list[str] = []
    for _ in range(tries):
        try:
            if deps.wecom is None:
                raise WeComError("no WeCom client configured")
            media = await deps.wecom.get_media(media_id)
            return Download(media.content_type, media.content, tuple(failures))
        except WeComError as err:
            failures.append(str(err)[:500])
            if isinstance(err, WeComAPIError) and err.errcode in MEDIA_GONE:
                return Download(failures=tuple(failures), gone=True)
    return Download(failures=tuple(failures))


async def process(
    session: AsyncSession, deps: Deps, photo: TaskPhoto, user: Staff, now: datetime, fetched: Download
) -> str | None:
    """Store and tag one pending photo from its download, then complete its task. None = still pending."""
    photo.tries += len(fetched.failures)
    if fetched.failures:
        photo.last_error = fetched.failures[-1]
    content_type, content = fetched.content_type, fetched.content
    if not content:
        if fetched.gone or now - photo.received_at >= MEDIA_KEPT:
            photo.state = "lost"
            return render("task_photo_lost")
        photo.next_try_at = now + timedelta(seconds=RETRY_AFTER[max(min(photo.tries, len(RETRY_AFTER)) - 1, 0)])
        return None
    sha, rel = await asyncio.to_thread(write_photo, deps.data_dir, content, content_type)
    earlier = (await session.execute(select(TaskPhoto.id).where(TaskPhoto.sha256 == sha))).scalar_one_or_none()
    if earlier is not None:
        photo.state, photo.path = "duplicate", rel
        return render("task_photo_duplicate")
    photo.sha256, photo.path = sha, rel  # unique: if another process took the same bytes, the event replays
    store = await session.get(Store, user.store_id) if user.store_id else None
    await _tag(session, deps, photo, user, store, content)
    task, choices = await _task_for(session, photo, user, deps.config.task_rules.location_window_minutes)
    if task is None:
        photo.state = "unassigned"  # kept: a tap on the choice card or 交图 gives it to a task
        if len(choices) >= 2:
            await send_card(session, user.userid, choice_card(photo, choices), now=now,
                            dedupe_key=f"task-photo:{photo.id}:ask")
            return ""
        return await _ask_which(session, user)
    return await attach(session, deps, photo, task, user, now)


def choice_card(photo: TaskPhoto, tasks: list[TaskInstance]) -> dict[str, object]:
    """Two or more photo tasks are open: one button per task (`task:photo:<task_id>`); the card's own task_id
    (`photo-<photo id>`) says which photo a tap gives away."""
    shown = tasks[:MAX_CHOICES]
    return button_card(
        task_id=card_task_id("photo", photo.id),
        title=render("task_photo_choice_title"),
        desc=render("task_photo_choice", count=len(tasks), more=len(tasks) > len(shown)),
        buttons=[(t.title, f"task:photo:{t.id}", 1) for t in shown],
    )


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


async def _task_for(
    session: AsyncSession, photo: TaskPhoto, user: Staff, window_minutes: int
) -> tuple[TaskInstance | None, list[TaskInstance]]:
    """The task the user was last prompted for (a reminder inside the location window), else their only open
    photo task; with several and no prompt, (None, the open ones): the sender is asked which, never guessed for."""
    if photo.task_id is not None:
        task = await session.get(TaskInstance, photo.task_id)
        if task is not None and task.state == "open":
            return task, []
    mine = await open_tasks_for(session, user, "photo")
    since = photo.received_at - timedelta(minutes=window_minutes)
    prompted = [t for t in mine if t.reminded_at is not None and since <= t.reminded_at <= photo.received_at]
    if prompted:
        return max(prompted, key=lambda t: (t.reminded_at or since, t.id)), []
    if len(mine) == 1:
        return mine[0], []
    return None, mine


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


async def process_due(deps: Deps, *, limit: int = 20) -> int:
    """Photos due for a download: leased in one short transaction (next_try_at pushed out, so a crash retries
    them after LEASE and two servers never take the same one), downloaded concurrently outside any transaction,
    then each stored and attached in its own transaction; the sender is told the outcome. Returns how many."""
    now = deps.clock.now()
    async with deps.sessions() as session, deps.writing(session), session.begin():
        stmt = (
            select(TaskPhoto.id, TaskPhoto.media_id, TaskPhoto.tries)
            .where(TaskPhoto.state == "pending", TaskPhoto.next_try_at <= now)
            .order_by(TaskPhoto.next_try_at, TaskPhoto.id).limit(limit).with_for_update(skip_locked=True)
        )
        due: list[tuple[int, str, int]] = [(r[0], r[1], r[2]) for r in await session.execute(stmt)]
        if due:
            await session.execute(
                update(TaskPhoto).where(TaskPhoto.id.in_([d[0] for d in due])).values(next_try_at=now + LEASE)
            )
    limit_downloads = asyncio.Semaphore(CONCURRENT_DOWNLOADS)

    async def one(photo_id: int, media_id: str, tries: int) -> None:
        async with limit_downloads:
            fetched = await download(deps, media_id, IMMEDIATE_TRIES if tries == 0 else 1)
        await _settle(deps, photo_id, fetched)

    await asyncio.gather(*(one(*d) for d in due))
    return len(due)


retry_pending = process_due  # the scheduler job's name for the same pass


async def _settle(deps: Deps, photo_id: int, fetched: Download) -> None:
    now = deps.clock.now()
    async with deps.sessions() as session, deps.writing(session), session.begin():
        photo = await session.get(TaskPhoto, photo_id, with_for_update=True)
        if photo is None or photo.state != "pending":
            return  # another server finished it meanwhile
        user = await session.get(Staff, photo.staff_id)
        if user is None:
            return
        first = photo.tries == 0
        try:
            async with session.begin_nested():
                reply = await process(session, deps, photo, user, now, fetched)
        except DomainError as err:  # e.g. the task was closed meanwhile: keep the photo, tell the sender
            photo.state, reply = "unassigned", err.user_message
        if reply is None and first:
            reply = render("task_photo_pending")
        if reply:  # "" = answered with a card already
            await send_text(session, user.userid, reply, now=now, dedupe_key=f"task-photo:{photo.id}:{photo.state}")


class PhotoWorker:
    """The background step for photo proof: `drain()` processes every due photo; `start()` runs it as a loop."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.loop = DrainLoop("photo-worker", self.drain, deps.config.inbox.poll_seconds)

    async def drain(self) -> int:
        done = 0
        while n := await process_due(self.deps):
            done += n
        return done


async def photos_ctx(app: web.Application) -> AsyncIterator[None]:
    """The photo worker under bot.keys.PHOTOS, running where the inbox does (`inbox.workers` > 0)."""
    deps = app[DEPS]
    worker = PhotoWorker(deps)
    app[PHOTOS] = worker
    if deps.config.inbox.workers > 0:
        worker.loop.start()
    try:
        yield
    finally:
        await worker.loop.stop()
