"""Digest jobs: the region supervisors' morning digest (handlers/digest.py), checked every minute."""

from __future__ import annotations

from bot.deps import Deps
from handlers.digest import send_supervisor_digests
from scheduler.spec import JobSpec, every


async def supervisor_digests(deps: Deps) -> int:
    """Each supervisor's digest once per store-local day, from `alerts.supervisor_digest_time` on."""
    async with deps.sessions() as session, session.begin():
        return await send_supervisor_digests(session, deps.config, deps.clock.now())


def jobs(deps: Deps) -> list[JobSpec]:
    return [JobSpec("digest.supervisors", supervisor_digests, every(1))]
