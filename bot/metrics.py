"""Prometheus metrics: process counters in a per-app registry, plus gauges read from the database at scrape."""

from __future__ import annotations

from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from models.inbox import InboundEvent
from models.loop_metrics import store_metrics
from models.outbox import OutboundMessage
from models.retention import oldest_kept, totals
from models.task import TaskInstance


class Metrics:
    """One registry per app, so two apps in one process (tests, multi-instance) never collide."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.callbacks = Counter("storebot_callbacks", "WeCom callbacks by outcome", ["outcome"], registry=r)
        self.callback_seconds = Histogram(
            "storebot_callback_ack_seconds", "Time to answer a WeCom callback", registry=r
        )
        self.events_processed = Counter(
            "storebot_events_processed", "Inbound events handled by outcome", ["outcome"], registry=r
        )
        self.outbox_sends = Counter(
            "storebot_outbox_sends", "Outbox send attempts by outcome", ["outcome"], registry=r
        )
        self.pos_sales = Counter("storebot_pos_sales", "POS sales by outcome", ["outcome"], registry=r)
        self.outbox_state = Gauge("storebot_outbox_messages", "Outbox rows by state", ["state"], registry=r)
        self.inbox_state = Gauge("storebot_inbox_events", "Inbox rows by state", ["state"], registry=r)
        self.task_state = Gauge("storebot_task_instances", "Task instances by state", ["state"], registry=r)
        self.retention_pruned = Gauge(
            "storebot_retention_pruned_rows", "Rows deleted by retention so far (all servers), by table",
            ["table"], registry=r,
        )
        self.retention_oldest = Gauge(
            "storebot_retention_oldest_kept_age_seconds", "Age of the oldest row kept, by table (absent: empty)",
            ["table"], registry=r,
        )
        self.store_gauges = Gauge(
            "storebot_store_metric", "Per-store loop effect (accuracy, slow-moving share, ...)",
            ["store", "metric"], registry=r,
        )

    async def refresh(self, session: AsyncSession, settings: Settings, now: datetime) -> None:
        """Read the gauges that live in the database."""
        self.outbox_state.clear()
        for state, n in await session.execute(
            select(OutboundMessage.state, func.count()).group_by(OutboundMessage.state)
        ):
            self.outbox_state.labels(state).set(n)
        self.inbox_state.clear()
        for state, n in await session.execute(select(InboundEvent.state, func.count()).group_by(InboundEvent.state)):
            self.inbox_state.labels(state).set(n)
        self.task_state.clear()
        for state, n in await session.execute(select(TaskInstance.state, func.count()).group_by(TaskInstance.state)):
            self.task_state.labels(state).set(n)
        for table, n in (await totals(session)).items():
            self.retention_pruned.labels(table).set(n)
        self.retention_oldest.clear()
        for table, at in (await oldest_kept(session)).items():
            if at is not None:
                self.retention_oldest.labels(table).set(max((now - at).total_seconds(), 0.0))
        await refresh_store_gauges(session, self.store_gauges, settings, now)

    def render(self) -> bytes:
        return generate_latest(self.registry)


async def refresh_store_gauges(session: AsyncSession, gauge: Gauge, settings: Settings, now: datetime) -> None:
    """/metrics: storebot_store_metric{store, metric} over the last 30 days (accuracy, slow-moving, emergencies)."""
    view = await store_metrics(session, settings, now=now, date_from=now - timedelta(days=30), date_to=now)
    gauge.clear()
    per_store = view["stores"]
    assert isinstance(per_store, dict)
    for code, values in [*per_store.items(), ("_all", view["overall"])]:
        for metric in ("inventory_accuracy", "slow_moving_share", "emergency_replenishments"):
            value = values[metric]
            if value is not None:
                gauge.labels(code, metric).set(float(value))
