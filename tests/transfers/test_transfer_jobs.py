"""Transfer jobs: due-time functions with fixed datetimes, and reminders / escalations that fire once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from bot.clock import FakeClock
from bot.config import Settings
from bot.deps import Deps
from models.transfer import Transfer, TransferStep
from models.transfer_waits import Waits, due_steps
from scheduler.transfer_jobs import (
    APPROVAL_ESCALATE,
    APPROVAL_REMIND,
    RECEIPT_ADMIN,
    RECEIPT_OVERDUE,
    check_transfers,
    jobs,
    next_due,
)
from tests.factories import Chain
from tests.transfers.test_transfer import (
    approved_and_shipped,
    click,
    mark_sent,
    only_transfer,
    outbox,
    run,
    text,
    texts,
)

T0 = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
WAITS = Waits(remind=timedelta(hours=4), escalate=timedelta(hours=12), receipt=timedelta(hours=24),
              receipt_admin=timedelta(hours=24))


def transfer(state: str, *, shipped_at: datetime | None = None) -> Transfer:
    return Transfer(id=1, from_store_id=1, to_store_id=2, state=state, requested_by="s3", created_at=T0,
                    shipped_at=shipped_at)


def test_approval_steps_fall_due_after_their_waits() -> None:
    t = transfer("requested")
    assert due_steps(T0 + timedelta(hours=3, minutes=59), t, WAITS) == []
    assert due_steps(T0 + timedelta(hours=4), t, WAITS) == [APPROVAL_REMIND]
    assert due_steps(T0 + timedelta(hours=12), t, WAITS) == [APPROVAL_REMIND, APPROVAL_ESCALATE]
    assert next_due(t, WAITS) == T0 + timedelta(hours=12)


def test_receipt_steps_count_from_shipping_and_stop_once_received() -> None:
    shipped = T0 + timedelta(hours=2)
    t = transfer("shipped", shipped_at=shipped)
    assert due_steps(shipped + timedelta(hours=23), t, WAITS) == []
    assert due_steps(shipped + timedelta(hours=24), t, WAITS) == [RECEIPT_OVERDUE]
    assert due_steps(shipped + timedelta(hours=48), t, WAITS) == [RECEIPT_OVERDUE, RECEIPT_ADMIN]
    for state in ("received", "partially_received", "rejected", "cancelled", "approved"):
        assert due_steps(shipped + timedelta(days=30), transfer(state, shipped_at=shipped), WAITS) == []
    assert next_due(transfer("received", shipped_at=shipped), WAITS) is None


def test_job_is_registered_with_a_stable_id(deps: Deps) -> None:
    assert [spec.id for spec in jobs(deps)] == ["transfers.check"]


def overdue_texts(rows: list[str]) -> list[str]:
    return [m for m in rows if "仍未签收" in m]


async def test_shipped_and_not_received_notifies_the_supervisor_once_then_the_admin(
    deps: Deps, chain: Chain, clock: FakeClock
) -> None:
    t = await approved_and_shipped(deps, clock)
    clock.advance(hours=23)
    assert await check_transfers(deps) == 0
    clock.advance(hours=1)
    assert await check_transfers(deps) == 1
    assert await check_transfers(deps) == 0  # the second run fires nothing
    [notice] = overdue_texts(texts(await outbox(deps.sessions, "sup1")))
    assert f"调拨单 {t.id} 已出库 24 小时" in notice
    assert overdue_texts(texts(await outbox(deps.sessions, "admin"))) == []
    clock.advance(hours=24)
    await asyncio.gather(check_transfers(deps), check_transfers(deps))  # two processes at once
    assert len(overdue_texts(texts(await outbox(deps.sessions, "admin")))) == 1
    assert len(overdue_texts(texts(await outbox(deps.sessions, "sup1")))) == 1


async def test_received_in_time_is_never_escalated(deps: Deps, chain: Chain, clock: FakeClock) -> None:
    t = await approved_and_shipped(deps, clock)
    clock.advance(hours=5)
    await run(deps, text(clock, "s3", f"签收 {t.id}"))
    assert (await only_transfer(deps.sessions)).state == "received"
    clock.advance(days=10)
    assert await check_transfers(deps) == 0
    for who in ("sup1", "sup2", "admin"):
        assert overdue_texts(texts(await outbox(deps.sessions, who))) == []


async def test_pending_approval_is_reminded_then_escalated_to_the_admin(
    deps: Deps, chain: Chain, clock: FakeClock
) -> None:
    await run(deps, text(clock, "s3", "调拨 S001 A001 5"))
    t = await only_transfer(deps.sessions)
    await mark_sent(deps.sessions, "sup1", f"transfer-{t.id}-approve-", "rc-card", clock.now())
    clock.advance(hours=4)
    assert await check_transfers(deps) == 1
    assert await check_transfers(deps) == 0
    sup_rows = await outbox(deps.sessions, "sup1")
    assert len([m for m in texts(sup_rows) if "已等待审批 4 小时" in m]) == 1
    assert len([r for r in sup_rows if r.msgtype == "template_card"]) == 1  # card still fresh: no new card
    clock.advance(hours=8)
    assert await check_transfers(deps) == 1
    admin_rows = await outbox(deps.sessions, "admin")
    assert any("郑督导仍未处理" in m for m in texts(admin_rows))
    [admin_card] = [r.payload for r in admin_rows if r.msgtype == "template_card"]
    assert [b["key"] for b in admin_card["button_list"]][:2] == [f"transfer:approve:{t.id}", f"transfer:reject:{t.id}"]
    await run(deps, click(clock, "admin", f"transfer:approve:{t.id}", "rc-admin"))
    assert (await only_transfer(deps.sessions)).state == "approved"
    async with deps.sessions() as session:
        steps = set((await session.execute(select(TransferStep.step))).scalars())
    assert steps == {APPROVAL_REMIND, APPROVAL_ESCALATE}


async def test_reminder_sends_a_fresh_card_when_the_old_code_expired(
    deps: Deps, chain: Chain, clock: FakeClock, make_settings: Callable[..., Settings]
) -> None:
    slow = replace(deps, config=make_settings(rules={"transfer_approval_remind_hours": 80,
                                                     "transfer_approval_escalate_hours": 200}))
    await run(slow, text(clock, "s3", "调拨 S001 A001 5"))
    t = await only_transfer(deps.sessions)
    await mark_sent(deps.sessions, "sup1", f"transfer-{t.id}-approve-", "rc-card", clock.now())
    clock.advance(hours=80)
    assert await check_transfers(slow) == 1
    sup_cards = [r for r in await outbox(deps.sessions, "sup1") if r.msgtype == "template_card"]
    assert len(sup_cards) == 2
    assert sup_cards[1].card_task_id == f"transfer-{t.id}-approve-sup1-r"
