"""Retention job: deletes finished inbox and outbox rows, old locations and photos (rows and files) in small
batches, a bounded number per run, so a large backlog is worked off over several runs without long locks."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from bot.deps import Deps
from models.retention import TABLES, cutoffs, prune_batch
from scheduler.spec import JobSpec, every

log = logging.getLogger(__name__)


def unlink_files(data_dir: Path, relative: list[str]) -> int:
    """Delete photo files no row refers to any more; a file already gone is fine (another server, a rerun).
    Blocking: run in a thread."""
    root = data_dir.resolve()
    removed = 0
    for rel in relative:
        target = (root / rel).resolve()
        if not target.is_relative_to(root):  # a stored path never leaves data_dir; refuse one that would
            log.warning("retention: refusing to delete %s outside data_dir", rel)
            continue
        try:
            target.unlink()
            removed += 1
        except FileNotFoundError:
            pass
    return removed


async def prune(deps: Deps) -> dict[str, int]:
    """One run: for each table up to `max_batches` transactions of `batch_size` rows. Returns what was deleted
    per table (tables with nothing to delete left out); logs only when something was."""
    settings = deps.config.retention
    if not settings.enabled:
        return {}
    now = deps.clock.now()
    cut = cutoffs(deps.config, now)
    pruned: dict[str, int] = {}
    files = 0
    for table in TABLES:
        for _ in range(settings.max_batches):
            async with deps.sessions() as session, session.begin():
                batch = await prune_batch(session, table, cut.of(table), settings.batch_size, now)
            if batch.files:  # after the commit: a rolled-back delete must not have lost its file
                files += await asyncio.to_thread(unlink_files, deps.data_dir, batch.files)
            if batch.deleted:
                pruned[table] = pruned.get(table, 0) + batch.deleted
            if batch.deleted < settings.batch_size:
                break
    if pruned:
        summary = ", ".join(f"{n} {table}" for table, n in pruned.items())
        log.info("retention: deleted %s rows (%d photo files)", summary, files)
    return pruned


def jobs(deps: Deps) -> list[JobSpec]:
    if not deps.config.retention.enabled:
        return []
    return [JobSpec("retention.prune", prune, every(deps.config.retention.every_minutes))]
