"""Stock jobs: rule evaluation, alert digests, escalations."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.deps import Deps

if TYPE_CHECKING:
    from scheduler import JobSpec


def jobs(deps: Deps) -> list[JobSpec]:
    return []
