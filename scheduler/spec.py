"""A scheduled job: a plain async function of Deps with a stable id and its trigger."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.deps import Deps

Job = Callable[[Deps], Awaitable[object]]


@dataclass(frozen=True)
class JobSpec:
    id: str
    func: Job
    trigger: BaseTrigger


def every(minutes: float) -> IntervalTrigger:
    return IntervalTrigger(minutes=minutes)
