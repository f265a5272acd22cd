"""Customer-loop jobs: stages and segments rebuilt on a schedule."""

from __future__ import annotations

import logging

from bot.deps import Deps
from models.segment import rebuild_all
from scheduler.spec import JobSpec, every

log = logging.getLogger(__name__)


async def rebuild_segments(deps: Deps) -> dict[str, int | str]:
    """Every member's stage, then every segment (config ones synced first); one transaction."""
    now = deps.clock.now()
    async with deps.sessions() as session, session.begin():
        out = await rebuild_all(session, deps.config.customers, deps.config.segments, now)
    failed = {k: v for k, v in out.items() if isinstance(v, str)}
    if failed:
        log.warning("segments failed to rebuild: %s", failed)
    return out


def jobs(deps: Deps) -> list[JobSpec]:
    return [
        JobSpec("customers.rebuild_segments", rebuild_segments, every(deps.config.customers.segment_rebuild_minutes)),
    ]
