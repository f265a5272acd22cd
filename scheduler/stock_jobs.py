"""Stock jobs: rule evaluation over every level, escalation steps, and the digest flush."""

from __future__ import annotations

import logging

from bot.deps import Deps
from handlers.alert_delivery import flush_digests
from models.alert import escalate, evaluate
from scheduler.spec import JobSpec, every

log = logging.getLogger(__name__)

TICK_MINUTES = 0.5  # escalation and digest checks; a digest window is minutes long, so this is precise enough


async def evaluate_rules(deps: Deps) -> int:
    """Raise and resolve alerts for every (store, SKU) in one set-based pass; returns how many were raised."""
    cfg = deps.config
    now = deps.clock.now()
    async with deps.sessions() as session, session.begin():
        raised = await evaluate(session, rules=cfg.rules, alerts=cfg.alerts, now=now)
    if raised:
        log.info("rule evaluation raised %d alerts", len(raised))
    return len(raised)


async def alert_tick(deps: Deps) -> tuple[int, int]:
    """Fire due chain steps, then send the digests whose window closed: (steps fired, digests queued)."""
    now = deps.clock.now()
    async with deps.sessions() as session, session.begin():
        fired = await escalate(session, alerts=deps.config.alerts, now=now)
    async with deps.sessions() as session, session.begin():
        sent = await flush_digests(session, deps.config, now)
    return fired, sent


async def run_stock_loop(deps: Deps) -> None:
    await evaluate_rules(deps)
    await alert_tick(deps)


def jobs(deps: Deps) -> list[JobSpec]:
    return [
        JobSpec("stock.evaluate_rules", run_stock_loop, every(deps.config.rules.evaluate_every_minutes)),
        # A short digest window (the demo's 20 s) is ticked twice per window, so the card is never much late.
        JobSpec("stock.alert_tick", alert_tick,
                every(min(TICK_MINUTES, deps.config.alerts.digest_seconds / 120) or TICK_MINUTES)),
    ]
