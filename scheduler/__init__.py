"""APScheduler wiring: every job is a plain async function of Deps with a stable id, registered here."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.deps import Deps
from scheduler import (
    campaign_jobs,
    customer_jobs,
    digest_jobs,
    retention_jobs,
    stock_jobs,
    task_jobs,
    transfer_jobs,
)
from scheduler.spec import Job, JobSpec, every

__all__ = ["Job", "JobSpec", "every", "job_specs", "scheduler_ctx_factory"]

log = logging.getLogger(__name__)


def job_specs(deps: Deps) -> list[JobSpec]:
    """Every scheduled job; each is idempotent (unique constraints), so two server processes may both run it."""
    specs: list[JobSpec] = []
    for module in (stock_jobs, transfer_jobs, task_jobs, digest_jobs, retention_jobs, customer_jobs, campaign_jobs):
        specs.extend(module.jobs(deps))
    return specs


async def _run(spec: JobSpec, deps: Deps, running: set[asyncio.Task[None]]) -> None:
    task = asyncio.current_task()
    if task is not None:
        running.add(task)  # so shutdown can wait for it (a job cancelled mid-write must release the database)
    try:
        await spec.func(deps)
    except Exception:
        log.exception("scheduled job %s failed; it runs again at its next time", spec.id)
    finally:
        if task is not None:
            running.discard(task)


def scheduler_ctx_factory(deps_key: web.AppKey[Deps]) -> Callable[[web.Application], AsyncIterator[None]]:
    async def scheduler_ctx(app: web.Application) -> AsyncIterator[None]:
        deps = app[deps_key]
        if not deps.config.scheduler.enabled:
            yield
            return
        sched = AsyncIOScheduler(timezone="UTC")
        running: set[asyncio.Task[None]] = set()
        for spec in job_specs(deps):
            sched.add_job(
                _run, spec.trigger, args=(spec, deps, running), id=spec.id, replace_existing=True,
                coalesce=True, max_instances=1, misfire_grace_time=300,
            )
        sched.start()
        log.info("scheduler started with %d jobs", len(sched.get_jobs()))
        try:
            yield
        finally:
            sched.shutdown(wait=False)
            # Let jobs that are mid-flight finish (bounded), then cancel what is left and wait for it, so no
            # database work outlives the engine.
            if running:
                _done, pending = await asyncio.wait(set(running), timeout=deps.config.server.shutdown_grace_seconds)
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)

    return scheduler_ctx
