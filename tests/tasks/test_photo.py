"""Photo proof: stored by hash with tags, same photo refused, geofence flag, retried downloads, 交图."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from bot.clock import FakeClock
from bot.config import Settings
from bot.deps import Deps
from bot.events import Event
from bot.queues.photos import exif_taken_at, photo_path, process_due, retry_pending, write_photo
from handlers.task_gen import run_now
from models.task_proof import TaskPhoto, haversine_m, outside_geofence
from tests.factories import Chain
from tests.task_support import (
    MediaStore,
    image,
    jpeg,
    location,
    outbox,
    task_settings,
    tasks,
    text,
    texts,
    with_settings,
)
from tests.task_support import send as dispatch_event

NEAR_S002 = (31.2295, 121.4485)  # ~70 m from 静安店
FAR_FROM_S002 = (31.2600, 121.4800)  # ~4.5 km away


async def _setup(deps: Deps, make_settings: Callable[..., Settings], media: MediaStore, *stores: str) -> Deps:
    settings = task_settings(make_settings)
    deps = with_settings(deps, settings, wecom=media)
    template = settings.template("morning_check")
    assert template is not None
    async with deps.sessions() as session, session.begin():
        await run_now(session, settings, template, list(stores), deps.clock.now())
    return deps


async def _photos(deps: Deps) -> list[TaskPhoto]:
    async with deps.sessions() as session:
        return list((await session.execute(select(TaskPhoto).order_by(TaskPhoto.id))).scalars())


async def send(deps: Deps, event: Event) -> None:
    """Dispatch as the inbox does, then let the photo worker take what is due (downloads happen there)."""
    await dispatch_event(deps, event)
    await process_due(deps)


def test_storage_is_content_addressed_and_exif_is_read(tmp_path: Path) -> None:
    data = jpeg()
    sha, rel = write_photo(tmp_path, data, "image/jpeg")
    assert sha == hashlib.sha256(data).hexdigest()
    assert rel == f"photos/{sha[:2]}/{sha}.jpg" == photo_path(sha, "image/jpeg")
    assert (tmp_path / rel).read_bytes() == data
    assert write_photo(tmp_path, data, "image/jpeg") == (sha, rel)  # same bytes, same file
    taken = exif_taken_at(data, "Asia/Shanghai")
    assert taken is not None and taken.isoformat() == "2026-11-24T09:05:00+08:00"
    assert exif_taken_at(jpeg(taken=None), "Asia/Shanghai") is None
    assert exif_taken_at(b"not an image", "Asia/Shanghai") is None


def test_geofence_distance() -> None:
    assert 50 < haversine_m(31.2290, 121.4480, *NEAR_S002) < 100
    assert outside_geofence(4500.0, 300) and not outside_geofence(70.0, 300)
    assert not outside_geofence(None, 300) and not outside_geofence(4500.0, 0)


async def test_photo_completes_the_task_with_tags_and_the_same_photo_is_refused(
    deps: Deps, chain: Chain, clock: FakeClock, make_settings: Callable[..., Settings]
) -> None:
    media = MediaStore()
    deps = await _setup(deps, make_settings, media, "S002")
    media.files["m-1"] = jpeg()
    await send(deps, location("s3", *NEAR_S002, clock.now()))
    clock.advance(minutes=5)
    await send(deps, image("s3", "m-1", clock.now()))
    [task] = await tasks(deps.sessions)
    assert task.state == "done" and task.completed_by == chain.staff["s3"].id and not task.flagged
    [photo] = await _photos(deps)
    assert photo.state == "accepted" and photo.task_id == task.id and photo.store_id == chain.stores["S002"].id
    assert photo.sha256 == hashlib.sha256(media.files["m-1"]).hexdigest()
    assert photo.path is not None and (deps.data_dir / photo.path).exists()
    assert photo.received_at == clock.now()
    assert photo.exif_at is not None and photo.exif_at.isoformat() == "2026-11-24T01:05:00+00:00"
    assert photo.latitude == NEAR_S002[0] and photo.distance_m is not None and photo.distance_m < 100
    reply = texts(await outbox(deps.sessions, "s3"))[-1]
    assert "晨检" in reply and "已完成" in reply and "积分 +10" in reply

    clock.advance(minutes=1)
    async with deps.sessions() as session, session.begin():  # a second open photo task, then the same picture
        template = deps.config.template("display_photo")
        assert template is not None
        await run_now(session, deps.config, template, ["S002"], clock.now())
    await send(deps, image("s3", "m-1", clock.now()))
    assert "之前已经交过" in texts(await outbox(deps.sessions, "s3"))[-1]
    assert [t.state for t in await tasks(deps.sessions)] == ["done", "open"]
    assert [p.state for p in await _photos(deps)] == ["accepted", "duplicate"]


async def test_outside_the_geofence_is_accepted_flagged_and_the_manager_told(
    deps: Deps, chain: Chain, clock: FakeClock, make_settings: Callable[..., Settings]
) -> None:
    media = MediaStore()
    deps = await _setup(deps, make_settings, media, "S002")
    media.files["m-far"] = jpeg((0, 90, 200))
    await send(deps, location("s3", *FAR_FROM_S002, clock.now()))
    await send(deps, image("s3", "m-far", clock.now() + timedelta(minutes=2)))
    [task] = await tasks(deps.sessions)
    assert task.state == "done" and task.flagged
    assert "已告知店长" in texts(await outbox(deps.sessions, "s3"))[-1]
    [to_manager] = texts(await outbox(deps.sessions, "m2"))
    assert "钱多多" in to_manager and "超出 300 米" in to_manager


async def test_a_failed_download_is_kept_and_retried_by_the_job(
    deps: Deps, chain: Chain, clock: FakeClock, make_settings: Callable[..., Settings]
) -> None:
    media = MediaStore()
    deps = await _setup(deps, make_settings, media, "S002")
    media.files["m-2"] = jpeg((10, 200, 10))
    media.failures = 2
    await send(deps, image("s3", "m-2", clock.now()))
    assert "正在下载" in texts(await outbox(deps.sessions, "s3"))[-1]
    [photo] = await _photos(deps)
    assert photo.state == "pending" and photo.tries == 2
    assert await retry_pending(deps) == 0  # not due yet
    clock.advance(minutes=6)
    assert await retry_pending(deps) == 1
    [photo] = await _photos(deps)
    assert photo.state == "accepted"
    assert (await tasks(deps.sessions))[0].state == "done"
    assert "已完成" in texts(await outbox(deps.sessions, "s3"))[-1]


async def test_a_photo_with_no_open_task_asks_which_and_jiaotu_attaches_it(
    deps: Deps, chain: Chain, clock: FakeClock, make_settings: Callable[..., Settings]
) -> None:
    media = MediaStore()
    deps = await _setup(deps, make_settings, media, "S001")
    [task] = await tasks(deps.sessions)
    other = "m1"  # of the store, but not of the task's role: no open photo task of their own
    media.files["m-3"] = jpeg((1, 2, 3))
    await send(deps, image(other, "m-3", clock.now()))
    reply = texts(await outbox(deps.sessions, other))[-1]
    assert "哪个任务" in reply and f"#{task.id} 晨检" in reply
    await send(deps, text(other, f"交图 {task.id}", clock.now()))
    assert (await tasks(deps.sessions))[0].state == "done"
    assert [p.state for p in await _photos(deps)] == ["accepted"]
    await send(deps, text(other, "交图 1", clock.now()))
    assert "没有待交的照片" in texts(await outbox(deps.sessions, other))[-1]


async def test_a_photo_goes_to_the_task_just_reminded_before_the_oldest(
    deps: Deps, chain: Chain, clock: FakeClock, make_settings: Callable[..., Settings]
) -> None:
    from handlers.task_chase import chase
    from handlers.task_gen import generate_due

    media = MediaStore()
    deps = await _setup(deps, make_settings, media, "S002")  # 晨检 09:00, due 10:00
    clock.advance(hours=1)
    async with deps.sessions() as session, session.begin():
        await generate_due(session, deps.config, clock.now())  # 陈列拍照 10:00, due 11:30
        clock.advance(minutes=75)
        await chase(session, deps.config, clock.now())  # 11:15: reminder for 陈列拍照
    morning, display = await tasks(deps.sessions, store_id=chain.stores["S002"].id)
    assert display.reminded_at is not None and morning.reminded_at is None
    media.files["m-4"] = jpeg((4, 5, 6))
    clock.advance(minutes=1)
    await send(deps, image("s3", "m-4", clock.now()))
    assert [t.state for t in await tasks(deps.sessions, store_id=chain.stores["S002"].id)] == ["open", "done"]


async def test_a_location_event_tags_the_photo_and_media_gone_after_three_days_is_reported(
    deps: Deps, chain: Chain, clock: FakeClock, make_settings: Callable[..., Settings]
) -> None:
    from bot.events import LocationReport

    media = MediaStore()
    deps = await _setup(deps, make_settings, media, "S002")
    await send(deps, LocationReport(from_user="s3", create_time=clock.now(), agent_id=1000002,
                                    latitude=NEAR_S002[0], longitude=NEAR_S002[1], precision=20.0))
    assert texts(await outbox(deps.sessions, "s3")) == []  # an event the user did not write: no reply
    media.files["m-5"] = jpeg((7, 8, 9))
    clock.advance(minutes=29)  # inside location_window_minutes (30)
    await send(deps, image("s3", "m-5", clock.now()))
    [photo] = await _photos(deps)
    assert photo.state == "accepted" and photo.latitude == NEAR_S002[0]

    media.failures = 1000  # WeCom never answers for the next one
    clock.advance(hours=1)
    await send(deps, image("s3", "m-6", clock.now()))
    for _ in range(30):
        clock.advance(hours=3)
        await retry_pending(deps)
    assert [p.state for p in await _photos(deps)] == ["accepted", "lost"]
    assert "重新拍一张" in texts(await outbox(deps.sessions, "s3"))[-1]


async def test_a_location_older_than_the_window_does_not_tag_or_flag(
    deps: Deps, chain: Chain, clock: FakeClock, make_settings: Callable[..., Settings]
) -> None:
    media = MediaStore()
    deps = await _setup(deps, make_settings, media, "S002")
    await send(deps, location("s3", *FAR_FROM_S002, clock.now()))
    clock.advance(minutes=31)
    media.files["m-7"] = jpeg((70, 80, 90))
    await send(deps, image("s3", "m-7", clock.now()))
    [photo] = await _photos(deps)
    assert photo.state == "accepted" and photo.latitude is None and not photo.flagged
    assert "没有位置信息" in texts(await outbox(deps.sessions, "s3"))[-1]


async def test_an_invalid_media_id_is_reported_at_once_not_retried_for_days(
    deps: Deps, chain: Chain, clock: FakeClock, make_settings: Callable[..., Settings]
) -> None:
    media = MediaStore()
    deps = await _setup(deps, make_settings, media, "S002")
    await send(deps, image("s3", "expired-media", clock.now()))
    assert media.calls == 1
    assert [p.state for p in await _photos(deps)] == ["lost"]
    assert "重新拍一张" in texts(await outbox(deps.sessions, "s3"))[-1]
    assert (await tasks(deps.sessions))[0].state == "open"
