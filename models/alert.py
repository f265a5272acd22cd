"""Stock alerts (low stock, no movement, negative stock), their escalation tokens and digests."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ForeignKey, Index, String, TextClause, UniqueConstraint, bindparam, or_, select, text
from sqlalchemy import update as sa_update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from bot.config import AlertSettings, RulesSettings
from models.base import Base, UTCDateTime, dialect_name, insert_for
from models.org import Staff, Store, responsible

KINDS = ("negative_stock", "low_stock", "no_movement")
STATES = ("open", "acknowledged", "resolved")


class Alert(Base):
    """One alert per (store, SKU, kind) while not resolved: open_key is 1 then and NULL once resolved, and NULLs
    never collide in the unique constraint (Grafana OnCall's nullable-boolean trick, on SQLite and PostgreSQL).

    esc_step is the escalation token: the next chain step to fire. A step fires by a conditional UPDATE on it, so
    two processes never fire the same step twice, and acknowledging (state change) stops the chain.
    """

    __tablename__ = "alerts"
    __table_args__ = (
        UniqueConstraint("store_id", "sku_id", "kind", "open_key"),
        Index("ix_alerts_state_due", "state", "esc_due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"))  # indexed as the unique key's prefix
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id"))
    kind: Mapped[str] = mapped_column(String(32))
    level: Mapped[str] = mapped_column(String(16))  # critical | warning
    state: Mapped[str] = mapped_column(String(16), default="open")
    open_key: Mapped[int | None]
    on_hand: Mapped[int]  # at the time it was raised
    safety_stock: Mapped[int]
    created_at: Mapped[datetime]
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))
    handled_as: Mapped[str | None] = mapped_column(String(32))  # ack | restocked | transfer:<id> | recount:<id>
    resolved_at: Mapped[datetime | None]
    snoozed_until: Mapped[datetime | None]
    esc_step: Mapped[int] = mapped_column(default=0)
    esc_due_at: Mapped[datetime | None]


class AlertNotice(Base):
    """One person to be told about one alert at one chain step; handlers/alert_delivery.py merges them into digests.

    The alert is a stock alert (`alert_id`) or a campaign health alert (`campaign_alert_id`, models/campaign_alert.py):
    exactly one is set, so both kinds share the windows, the quiet-hours hold and the digest card."""

    __tablename__ = "alert_notices"
    __table_args__ = (
        UniqueConstraint("alert_id", "step", "recipient"),
        UniqueConstraint("campaign_alert_id", "step", "recipient"),
        Index("ix_alert_notices_pending", "digest_id", "due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id"), index=True)
    campaign_alert_id: Mapped[int | None] = mapped_column(ForeignKey("campaign_alerts.id"))
    step: Mapped[int]
    recipient: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    due_at: Mapped[datetime]  # created_at, or the end of the store's quiet hours when held
    digest_id: Mapped[int | None] = mapped_column(ForeignKey("alert_digests.id"))


class AlertDigest(Base):
    """One digest card per (recipient, window start): the unique key keeps restarts and two processes honest."""

    __tablename__ = "alert_digests"
    __table_args__ = (UniqueConstraint("recipient", "window_start"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    recipient: Mapped[str] = mapped_column(String(64))
    window_start: Mapped[datetime]
    created_at: Mapped[datetime]
    items: Mapped[int]


def _condition_kind(rules: RulesSettings, now: datetime) -> tuple[str, dict[str, object]]:
    """SQL CASE giving the alert kind a stock_levels row (alias sl) stands in, or NULL: one scan finds all."""
    cutoff = now - timedelta(days=rules.no_movement_days)
    expr = (
        "CASE WHEN sl.on_hand < 0 THEN 'negative_stock' "
        "WHEN sl.on_hand < sl.safety_stock THEN 'low_stock' "
        "WHEN sl.on_hand > 0 AND COALESCE(sl.last_sold_at, sl.last_moved_at) < :cutoff THEN 'no_movement' "
        "END"
    )
    return expr, {"cutoff": cutoff}


def _sql(sql: str, params: dict[str, object]) -> TextClause:
    """text() with datetimes bound through UTCDateTime, so they compare and store as the ORM's do."""
    typed = [bindparam(k, type_=UTCDateTime()) for k, v in params.items()
             if isinstance(v, datetime) and re.search(rf":{k}\b", sql)]
    return text(sql).bindparams(*typed)


def _pairs_filter(pairs: Sequence[tuple[int, int]] | None, params: dict[str, object], table: str) -> str:
    """" AND ((t.store_id = .. AND t.sku_id IN (..)) OR ...)" for the touched pairs, grouped by store so both
    columns of the (store_id, sku_id) index are used; "" for every pair."""
    if pairs is None:
        return ""
    by_store: dict[int, list[int]] = {}
    for store_id, sku_id in pairs:
        by_store.setdefault(store_id, []).append(sku_id)
    terms = []
    for i, (store_id, sku_ids) in enumerate(sorted(by_store.items())):
        params[f"st{i}"] = store_id
        names = []
        for j, sku_id in enumerate(sorted(set(sku_ids))):
            params[f"sk{i}_{j}"] = sku_id
            names.append(f":sk{i}_{j}")
        terms.append(f"({table}.store_id = :st{i} AND {table}.sku_id IN ({', '.join(names)}))")
    return " AND (" + " OR ".join(terms) + ")" if terms else " AND 1 = 0"


_SCOPED_RAISE_MAX = 1000  # beyond this many pairs to raise, one more full scan is cheaper than a long filter


ClearedHook = Callable[[AsyncSession, list[int], datetime], Awaitable[object]]
_ON_CLEARED: list[ClearedHook] = []


def on_cleared(hook: ClearedHook) -> ClearedHook:
    """Register who hears that alerts cleared by themselves (handlers.alert_delivery greys their cards): models
    never call up into handlers, so the flow registers itself here when it is imported."""
    _ON_CLEARED.append(hook)
    return hook


async def evaluate(
    session: AsyncSession, *, rules: RulesSettings, alerts: AlertSettings, now: datetime,
    pairs: Sequence[tuple[int, int]] | None = None,
) -> list[int]:
    """Raise alerts whose condition holds and resolve those whose condition cleared; set-based, in SQL.

    pairs limits the work to the (store, SKU) pairs a sale, count or receipt touched; None = every level.
    Returns the ids of alerts raised now (their first chain step is due).
    """
    if pairs is not None and not pairs:
        return []
    kind_expr, params = _condition_kind(rules, now)
    params["now"] = now
    where = _pairs_filter(pairs, params, "sl")
    crit = ", ".join(f"'{k}'" for k in alerts.critical_kinds if k in KINDS) or "''"
    due = " ".join(f"WHEN '{k}' THEN :due_{k}" for k in KINDS)
    for k in KINDS:
        params[f"due_{k}"] = now + timedelta(minutes=alerts.chain_for(k)[0].after_minutes)
    todo_raise = todo_resolve = probe_open = True
    if pairs is None:
        # Full pass: one scan of the levels, probing the open alerts by their unique key, counts the levels whose
        # condition holds and those that have their open alert, and lists the pairs that lack it (to raise).
        # Each open alert matches at most one level (one row per store and SKU, one kind per row), so the open
        # alerts beyond the matched ones are exactly those whose condition cleared or whose level is gone: only
        # then does the resolve run. The steady state (nothing new, nothing cleared) ends after this one scan.
        n_open = (await session.execute(text("SELECT COUNT(*) FROM alerts WHERE open_key IS NOT NULL"))).scalar_one()
        if n_open:
            key = "CASE WHEN a.id IS NULL THEN CAST(c.store_id AS VARCHAR) || ',' || CAST(c.sku_id AS VARCHAR) END"
            agg = f"string_agg({key}, ';')" if dialect_name(session) == "postgresql" else f"group_concat({key}, ';')"
            probe = (
                "SELECT COUNT(a.id), " + agg + " FROM (SELECT sl.store_id AS store_id, sl.sku_id AS sku_id, "
                + kind_expr + " AS kind FROM stock_levels sl) c LEFT JOIN alerts a ON a.store_id = c.store_id "
                "AND a.sku_id = c.sku_id AND a.kind = c.kind AND a.open_key = 1 WHERE c.kind IS NOT NULL"
            )
            n_matched, keys = (await session.execute(_sql(probe, params), params)).one()
            missing = [(int(st), int(sk)) for st, sk in (k.split(",") for k in keys.split(";"))] if keys else []
            todo_raise, todo_resolve = bool(missing), n_open > n_matched
            if 0 < len(missing) <= _SCOPED_RAISE_MAX:  # a few new: raise just those pairs, no second full scan
                where = _pairs_filter(missing, params, "sl")
        else:
            todo_resolve = probe_open = False  # nothing open, nothing to resolve: the first run just raises
    if todo_resolve:
        resolve = (
            "UPDATE alerts SET state = 'resolved', open_key = NULL, resolved_at = :now, esc_due_at = NULL "
            "WHERE open_key IS NOT NULL AND kind <> COALESCE((SELECT " + kind_expr + " FROM stock_levels sl "
            "WHERE sl.store_id = alerts.store_id AND sl.sku_id = alerts.sku_id), '')"
            + _pairs_filter(pairs, params, "alerts")
        )
        cleared = list((await session.execute(_sql(resolve + " RETURNING id", params), params)).scalars())
        for hook in _ON_CLEARED if cleared else ():
            await hook(session, cleared, now)
    if not todo_raise:
        return []
    raise_sql = (
        "INSERT INTO alerts (store_id, sku_id, kind, level, state, open_key, on_hand, safety_stock, created_at, "
        "esc_step, esc_due_at) "
        "SELECT store_id, sku_id, kind, CASE WHEN kind IN (" + crit + ") THEN 'critical' ELSE 'warning' END, "
        "'open', 1, on_hand, safety_stock, :now, 0, CASE kind " + due + " END FROM ("
        "SELECT sl.store_id AS store_id, sl.sku_id AS sku_id, sl.on_hand AS on_hand, "
        "sl.safety_stock AS safety_stock, " + kind_expr + " AS kind FROM stock_levels sl WHERE 1 = 1" + where +
        ") c WHERE kind IS NOT NULL" + (
            " AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.store_id = c.store_id AND a.sku_id = c.sku_id "
            "AND a.kind = c.kind AND a.open_key = 1)"  # cheaper than a conflict per row
            if probe_open else ""  # none open a moment ago: the unique key alone keeps concurrent runs honest
        ) + " "
        "ON CONFLICT (store_id, sku_id, kind, open_key) DO NOTHING RETURNING id"
    )
    # SQLite's parser needs a WHERE before ON CONFLICT in INSERT ... SELECT: it is there ("c WHERE kind").
    return list((await session.execute(_sql(raise_sql, params), params)).scalars())


def hold_until(alerts: AlertSettings, timezone: str, now: datetime) -> datetime:
    """`now`, or the end of the store's quiet hours (store-local) if now falls inside them."""
    window = alerts.quiet_window()
    if window is None:
        return now
    start, end = window
    local = now.astimezone(ZoneInfo(timezone))
    t = local.time().replace(tzinfo=None)
    inside = (start <= t < end) if start < end else (t >= start or t < end)
    if not inside:
        return now
    end_local = local.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
    if end_local <= local:
        end_local += timedelta(days=1)
    return end_local.astimezone(UTC)


async def escalate(
    session: AsyncSession, *, alerts: AlertSettings, now: datetime, ids: Iterable[int] | None = None
) -> int:
    """Fire every chain step whose time has come on an open, unacknowledged, unsnoozed alert.

    Each step is claimed by `UPDATE ... WHERE esc_step = <seen step> AND state = 'open'`; only the process whose
    update hits the row queues the notices (dedupe per (alert, step, recipient) by the unique constraint).
    """
    stmt = select(Alert, Store).join(Store, Store.id == Alert.store_id).where(
        Alert.state == "open", Alert.esc_due_at <= now,
        or_(Alert.snoozed_until.is_(None), Alert.snoozed_until <= now),
    )
    if ids is not None:
        stmt = stmt.where(Alert.id.in_(list(ids)))
    fired = 0
    for alert, store in (await session.execute(stmt.order_by(Alert.id))).all():
        chain = alerts.chain_for(alert.kind)
        step = alert.esc_step
        if step >= len(chain):
            continue
        nxt = alert.created_at + timedelta(minutes=chain[step + 1].after_minutes) if step + 1 < len(chain) else None
        claimed = await session.execute(
            sa_update(Alert)
            .where(Alert.id == alert.id, Alert.esc_step == step, Alert.state == "open")
            .values(esc_step=step + 1, esc_due_at=nxt)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            continue
        due = hold_until(alerts, store.timezone, now) if alert.level != "critical" else now
        for person in await responsible(session, store, chain[step].to):
            await _add_notice(session, alert.id, step, person.userid, now, due)
        fired += 1
    return fired


async def _add_notice(session: AsyncSession, alert_id: int, step: int, recipient: str, now: datetime,
                      due: datetime) -> None:

    stmt = insert_for(session)(AlertNotice).values(
        alert_id=alert_id, step=step, recipient=recipient, created_at=now, due_at=due
    )
    await session.execute(stmt.on_conflict_do_nothing(index_elements=["alert_id", "step", "recipient"]))


async def add_campaign_notice(session: AsyncSession, campaign_alert_id: int, step: int, recipient: str,
                              now: datetime, due: datetime) -> None:
    """Queue a campaign health alert for one person at one chain step: it goes out in that person's next digest
    (handlers/alert_delivery.py), beside their stock alerts; once per (alert, step, person) by the unique key."""
    stmt = insert_for(session)(AlertNotice).values(
        campaign_alert_id=campaign_alert_id, step=step, recipient=recipient, created_at=now, due_at=due
    )
    await session.execute(stmt.on_conflict_do_nothing(index_elements=["campaign_alert_id", "step", "recipient"]))


async def acknowledge(session: AsyncSession, ids: Sequence[int], userid: str, now: datetime,
                      handled_as: str = "ack") -> int:
    """open → acknowledged; stops the chain and records who and how (ack, restocked, transfer:<id>, recount:<id>).
    Returns how many changed: the guarded UPDATE makes a double tap or two people at once one decision."""
    result = await session.execute(
        sa_update(Alert).where(Alert.id.in_(list(ids)), Alert.state == "open")
        .values(state="acknowledged", acknowledged_at=now, acknowledged_by=userid, esc_due_at=None,
                handled_as=handled_as)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def snooze(session: AsyncSession, ids: Sequence[int], until: datetime) -> int:
    """Quiet an open alert until `until`: no chain step fires before then. A negative stock is never quieted:
    the books are wrong and someone must recount."""
    result = await session.execute(
        sa_update(Alert).where(Alert.id.in_(list(ids)), Alert.state == "open", Alert.kind != "negative_stock")
        .values(snoozed_until=until)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def handle_on(session: AsyncSession, alert_id: int, handled_as: str) -> None:
    """Say how an acknowledged alert was handled once that is known (the transfer or task id)."""
    await session.execute(sa_update(Alert).where(Alert.id == alert_id).values(handled_as=handled_as)
                          .execution_options(synchronize_session=False))


async def surplus_store(session: AsyncSession, store: Store, sku_id: int) -> tuple[Store, int] | None:
    """The store of the same region with the most stock above its safety line for this SKU (ties: the lowest
    code), and that surplus; None when no other store of the region has any to spare."""
    from models.stock import StockLevel

    surplus = StockLevel.on_hand - StockLevel.safety_stock
    row = (await session.execute(
        select(Store, surplus).join(StockLevel, StockLevel.store_id == Store.id)
        .where(Store.region_id == store.region_id, Store.id != store.id, StockLevel.sku_id == sku_id, surplus > 0)
        .order_by(surplus.desc(), Store.code).limit(1)
    )).first()
    return (row[0], int(row[1])) if row else None


def may_handle(user: Staff, store: Store) -> bool:
    """The store's own manager, its region's supervisor, or an admin may acknowledge or snooze."""
    if user.role == "admin":
        return True
    if user.role == "supervisor":
        return user.region_id == store.region_id
    return user.role == "manager" and user.store_id == store.id



async def react(
    session: AsyncSession, *, rules: RulesSettings, alerts: AlertSettings, now: datetime,
    pairs: Sequence[tuple[int, int]],
) -> list[int]:
    """Right after a sale, count or receipt: re-evaluate the touched pairs and fire new alerts' first steps."""
    raised = await evaluate(session, rules=rules, alerts=alerts, now=now, pairs=pairs)
    if raised:
        await escalate(session, alerts=alerts, now=now, ids=raised)
    return raised
