"""Property: whatever follows `发货 <id>` (numbers, huge numbers, other scripts, SKU-like words), the shipper gets a
short plain answer, never an exception, and the source never goes below zero."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from bot.clock import FakeClock
from bot.deps import Deps
from handlers import dispatch
from models.outbox import OutboundMessage
from models.stock import StockLevel
from models.transfer import Transfer
from tests.factories import Chain
from tests.transfers.test_transfer import click, text

WORDS = st.one_of(
    st.text(max_size=12), st.integers(-5, 10**30).map(str), st.sampled_from(["A001", "a001", "A002", "²", "፩", "５"]),
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rest=st.lists(WORDS, max_size=5))
async def test_any_ship_command_gets_a_plain_answer_and_never_goes_negative(
    deps: Deps, chain: Chain, clock: FakeClock, rest: list[str]
) -> None:
    async with deps.sessions() as s:
        trans = await s.begin()
        try:
            await dispatch(text(clock, "s1", "调拨 S002 A001 500"), deps, s)
            ident = (await s.execute(select(Transfer.id).order_by(Transfer.id.desc()).limit(1))).scalar_one()
            await dispatch(click(clock, "sup1", f"transfer:approve:{ident}"), deps, s)
            before = (await s.execute(select(func.max(OutboundMessage.id)))).scalar_one() or 0
            await dispatch(text(clock, "m2", " ".join(["发货", str(ident), *rest])), deps, s)
            answers = (await s.execute(select(OutboundMessage).where(
                OutboundMessage.recipient == "m2", OutboundMessage.msgtype == "text", OutboundMessage.id > before,
            ))).scalars().all()
            assert answers, rest
            assert all(0 < len(str(a.payload["content"]).encode()) <= 2048 for a in answers)
            levels = (await s.execute(select(StockLevel.on_hand).where(
                StockLevel.store_id == chain.stores["S002"].id))).scalars().all()
            assert min(levels) >= 0
        finally:
            await trans.rollback()

