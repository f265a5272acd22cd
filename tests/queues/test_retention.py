"""Retention (issue 10: inbox payloads, outbox rows, user_locations and photos grew forever): finished rows older
than their window are deleted in bounded batches; work still needed is never deleted."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import FakeClock
from bot.config import Settings
from bot.deps import Deps
from bot.errors import ConfigError
from models.count import StockCount
from models.inbox import InboundEvent
from models.outbox import OutboundMessage
from models.retention import RetentionStat, cutoffs
from models.task import TaskInstance
from models.task_proof import TaskPhoto, UserLocation
from models.transfer import Transfer
from scheduler import retention_jobs
from scheduler.retention_jobs import prune
from tests.conftest import AppClient
from tests.factories import Chain

Sessions = async_sessionmaker[AsyncSession]
WINDOWS = {"inbox_days": 14, "outbox_days": 30, "locations_days": 30, "photos_days": 30}


def with_retention(deps: Deps, make_settings: Callable[..., Settings], **values: Any) -> Deps:
    return replace(deps, config=make_settings(retention={**WINDOWS, **values}))


def inbox(key: str, state: str, at: datetime) -> InboundEvent:
    return InboundEvent(dedupe_key=key, from_user="s1", msg_type="text", payload={"Content": key}, state=state,
                        attempts=1, received_at=at, processed_at=None if state == "pending" else at)


def outbox(key: str, state: str, at: datetime, card: str | None = None) -> OutboundMessage:
    sent = state == "sent"
    return OutboundMessage(
        channel="app", recipient="s1", msgtype="template_card" if card else "text",
        payload={"task_id": card} if card else {"content": key}, dedupe_key=key, card_task_id=card, state=state,
        attempts=1, next_attempt_at=at, created_at=at, sent_at=at if sent else None,
        response_code=f"rc-{key}" if card and sent else None,
    )


def task(chain: Chain, state: str, at: datetime, period: str) -> TaskInstance:
    return TaskInstance(template_key="morning_check", kind="scheduled", title="晨检", body="", proof="photo",
                        store_id=chain.stores["S001"].id, assignee_id=chain.staff["s1"].id, period_key=period,
                        fire_at=at, due_at=at, closes_at=at, points=1, state=state, created_at=at, flagged=False)


def photo(chain: Chain, msg: str, state: str, at: datetime, path: str | None, task_id: int | None = None,
          sha: str | None = None) -> TaskPhoto:
    return TaskPhoto(msg_id=msg, staff_id=chain.staff["s1"].id, store_id=chain.stores["S001"].id, task_id=task_id,
                     media_id=f"media-{msg}", state=state, sha256=sha, path=path, received_at=at, tries=1,
                     flagged=False)


def location(chain: Chain, at: datetime) -> UserLocation:
    return UserLocation(staff_id=chain.staff["s1"].id, latitude=31.2, longitude=121.4, source="report", at=at)


async def keys(sessions: Sessions, column: Any) -> set[str]:
    async with sessions() as s:
        return {str(v) for v in (await s.execute(select(column))).scalars()}


async def count(sessions: Sessions, model: Any) -> int:
    async with sessions() as s:
        return int((await s.execute(select(func.count()).select_from(model))).scalar_one())


def write_file(data_dir: Path, rel: str) -> Path:
    path = data_dir / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"jpeg")
    return path


async def test_inbox_outbox_locations_and_photos_grew_forever(
    deps: Deps, make_settings: Callable[..., Settings], sessions: Sessions, chain: Chain, clock: FakeClock,
) -> None:
    deps = with_retention(deps, make_settings)
    old, new = clock.now(), clock.now() + timedelta(days=37)
    async with sessions() as s, s.begin():
        s.add_all([
            inbox("in-old-done", "done", old), inbox("in-old-failed", "failed", old),
            inbox("in-old-pending", "pending", old), inbox("in-new-done", "done", new),
        ])
        s.add_all([
            location(chain, old), location(chain, old), location(chain, new),
        ])
        open_transfer = Transfer(from_store_id=chain.stores["S002"].id, to_store_id=chain.stores["S001"].id,
                                 state="shipped", requested_by="m1", created_at=old)
        done_transfer = Transfer(from_store_id=chain.stores["S002"].id, to_store_id=chain.stores["S001"].id,
                                 state="received", requested_by="m1", created_at=old)
        pending_count = StockCount(store_id=chain.stores["S001"].id, sku_id=chain.skus["A001"].id, counted=1,
                                   system_qty=20, state="pending", counted_by="s1", counted_at=old, created_at=old)
        open_task, done_task = task(chain, "open", old, "p-open"), task(chain, "done", old, "p-done")
        s.add_all([open_transfer, done_transfer, pending_count, open_task, done_task])
        await s.flush()
        s.add_all([
            outbox("out-old-sent", "sent", old), outbox("out-old-failed", "failed", old),
            outbox("out-old-cancelled", "cancelled", old), outbox("out-old-pending", "pending", old),
            outbox("out-old-sending", "sending", old), outbox("out-new-sent", "sent", new),
            outbox("card-open-transfer", "sent", old, f"transfer-{open_transfer.id}-receive-s1"),
            outbox("card-done-transfer", "sent", old, f"transfer-{done_transfer.id}-receive-s1"),
            outbox("card-pending-count", "sent", old, f"count-{pending_count.id}"),
            outbox("card-open-task", "sent", old, f"task-{open_task.id}"),
            outbox("card-done-task", "sent", old, f"task-{done_task.id}"),
        ])
        s.add_all([
            photo(chain, "ph-done", "accepted", old, "photos/aa/a.jpg", done_task.id, "a" * 64),
            photo(chain, "ph-open", "accepted", old, "photos/bb/b.jpg", open_task.id, "b" * 64),
            photo(chain, "ph-pending", "pending", old, None),
            photo(chain, "ph-lost", "lost", old, None),
            photo(chain, "ph-dup-old", "duplicate", old, "photos/cc/c.jpg"),  # shares c.jpg with ph-new
            photo(chain, "ph-new", "accepted", new, "photos/cc/c.jpg", None, "c" * 64),
        ])
    files = {name: write_file(deps.data_dir, f"photos/{name * 2}/{name}.jpg") for name in "abc"}
    clock.set(old + timedelta(days=40))

    assert await prune(deps) == {"inbox": 2, "outbox": 5, "user_locations": 2, "task_photos": 3}

    assert await keys(sessions, InboundEvent.dedupe_key) == {"in-old-pending", "in-new-done"}
    assert await keys(sessions, OutboundMessage.dedupe_key) == {
        "out-old-pending", "out-old-sending", "out-new-sent", "card-open-transfer", "card-pending-count",
        "card-open-task",
    }
    assert await count(sessions, UserLocation) == 1
    assert await keys(sessions, TaskPhoto.msg_id) == {"ph-open", "ph-pending", "ph-new"}
    assert {n: f.exists() for n, f in files.items()} == {"a": False, "b": True, "c": True}
    assert await prune(deps) == {}  # idempotent: nothing more to do


async def test_retention_prunes_in_bounded_batches_and_keeps_totals(
    deps: Deps, make_settings: Callable[..., Settings], sessions: Sessions, chain: Chain, clock: FakeClock,
) -> None:
    deps = with_retention(deps, make_settings, batch_size=3, max_batches=2)
    async with sessions() as s, s.begin():
        s.add_all(location(chain, clock.now() + timedelta(minutes=i)) for i in range(10))
    clock.advance(days=31)
    assert await prune(deps) == {"user_locations": 6}  # two batches of three, then the run stops
    assert await prune(deps) == {"user_locations": 4}
    assert await prune(deps) == {}
    async with sessions() as s:
        stat = await s.get(RetentionStat, "user_locations")
    assert stat is not None and stat.pruned == 10 and stat.last_pruned_at == clock.now()


async def test_retention_never_deletes_a_card_whose_response_code_still_works(
    deps: Deps, make_settings: Callable[..., Settings], sessions: Sessions, chain: Chain, clock: FakeClock,
) -> None:
    settings = make_settings(retention={"outbox_days": 3}, outbox={"card_update_max_age_hours": 100})
    assert cutoffs(settings, clock.now()).outbox == clock.now() - timedelta(hours=100)
    deps = replace(deps, config=settings)
    async with sessions() as s, s.begin():
        s.add(outbox("card", "sent", clock.now(), "alertdigest-1"))
    clock.advance(hours=99)
    assert await prune(deps) == {}
    clock.advance(hours=1, seconds=1)
    assert await prune(deps) == {"outbox": 1}


async def test_two_servers_prune_side_by_side(
    deps: Deps, make_settings: Callable[..., Settings], sessions: Sessions, chain: Chain, clock: FakeClock,
) -> None:
    """Several servers run the job on one database: each row is deleted once, the totals add up, nobody fails."""
    deps = with_retention(deps, make_settings, batch_size=7, max_batches=100)
    async with sessions() as s, s.begin():
        s.add_all(inbox(f"e{i}", "done", clock.now()) for i in range(120))
        s.add_all(location(chain, clock.now()) for _ in range(80))
    clock.advance(days=31)
    async with asyncio.timeout(60):
        runs = await asyncio.gather(prune(deps), prune(deps), prune(deps))
    assert sum(r.get("inbox", 0) for r in runs) == 120
    assert sum(r.get("user_locations", 0) for r in runs) == 80
    assert await count(sessions, InboundEvent) == 0 and await count(sessions, UserLocation) == 0
    async with sessions() as s:
        totals = dict(list(await s.execute(select(RetentionStat.table_name, RetentionStat.pruned))))
    assert totals == {"inbox": 120, "user_locations": 80}


async def test_retention_figures_in_metrics(
    deps: Deps, make_settings: Callable[..., Settings], sessions: Sessions, chain: Chain, clock: FakeClock,
    client: AppClient,
) -> None:
    deps = with_retention(deps, make_settings)
    start = clock.now()
    async with sessions() as s, s.begin():
        s.add_all([location(chain, start), location(chain, start + timedelta(days=5))])
        s.add(inbox("kept", "pending", start))
    clock.advance(days=31)
    await prune(deps)
    text = await (await client.get("/metrics")).text()
    samples = {
        (s.name, s.labels.get("table")): s.value
        for family in text_string_to_metric_families(text) for s in family.samples
        if s.name.startswith("storebot_retention_")
    }
    assert samples == {
        ("storebot_retention_pruned_rows", "inbox"): 0, ("storebot_retention_pruned_rows", "outbox"): 0,
        ("storebot_retention_pruned_rows", "user_locations"): 1, ("storebot_retention_pruned_rows", "task_photos"): 0,
        ("storebot_retention_oldest_kept_age_seconds", "user_locations"): 26 * 86400,
        ("storebot_retention_oldest_kept_age_seconds", "inbox"): 31 * 86400,  # pending: kept however old
    }


def test_retention_windows_never_go_below_three_days(make_settings: Callable[..., Settings]) -> None:
    for key in ("inbox_days", "outbox_days", "locations_days", "photos_days"):
        with pytest.raises(ConfigError, match=f"retention.{key}"):
            make_settings(retention={key: 2})
    assert make_settings(retention={"inbox_days": 3}).retention.inbox_days == 3


def test_retention_job_is_scheduled_unless_disabled(deps: Deps, make_settings: Callable[..., Settings]) -> None:
    on = retention_jobs.jobs(replace(deps, config=make_settings(retention={"every_minutes": 5})))
    assert [j.id for j in on] == ["retention.prune"]
    assert retention_jobs.jobs(replace(deps, config=make_settings(retention={"enabled": False}))) == []
