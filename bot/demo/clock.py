"""The demo's clock jump: move the demo's time ahead and run every scheduled job as the scheduler would have."""

from __future__ import annotations

import logging
from datetime import timedelta

from bot.clock import ShiftedClock
from bot.deps import Deps
from scheduler import job_specs

log = logging.getLogger(__name__)

JUMP_STEP = timedelta(minutes=15)  # shorter than any template's due window, so no period is jumped over
# what the passing of time sets off, run after every step; the other jobs run once at the end of the jump
TIMED_JOBS = ("tasks.generate", "tasks.chase", "transfers.check", "stock.alert_tick", "digest.supervisors")


async def advance_clock(deps: Deps, clock: ShiftedClock, delta: timedelta,
                        step: timedelta = JUMP_STEP) -> dict[str, int]:
    """Move the demo's time ahead by `delta` in steps, running every scheduled job after each step as the
    scheduler would have: tasks fire, reminders, overdue notices, escalations and digests go out. Returns what
    each job did (a count per job id)."""
    done: dict[str, int] = {}
    specs = [s for s in job_specs(deps) if s.id != "tasks.catch_up"]  # catch_up is the same pass as generate
    left = delta
    while left > timedelta():
        clock.shift(min(step, left))
        left -= min(step, left)
        last = left <= timedelta()
        for spec in specs:
            if not last and spec.id not in TIMED_JOBS:
                continue
            try:
                result = await spec.func(deps)
            except Exception:
                log.exception("demo clock: job %s failed", spec.id)
                continue
            for key, n in _counts(spec.id, result).items():
                done[key] = done.get(key, 0) + n
    return done


def _counts(job: str, result: object) -> dict[str, int]:
    """A job's answer as counts: an int, a list of ids, a tuple of ints, or a result object's lists by name."""
    if isinstance(result, int):
        return {job: int(result)}
    if isinstance(result, list | set):
        return {job: len(result)}
    if isinstance(result, tuple):
        return {job: sum(x for x in result if isinstance(x, int))}
    if hasattr(result, "__dict__"):
        return {f"{job}.{k}": len(v) for k, v in vars(result).items() if isinstance(v, list)}
    return {}
