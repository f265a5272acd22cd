"""WriteGate: acks and API writes go before the inbox worker, which is delayed but never starved."""

from __future__ import annotations

import asyncio

from bot.write_gate import WriteGate


async def test_the_worker_waits_while_an_ack_is_queued_and_enters_once_it_is_through() -> None:
    gate = WriteGate(max_defer_seconds=60)
    order: list[str] = []

    async def worker() -> None:
        async with gate.background(exclusive=True):
            order.append("worker")

    async def ack() -> None:
        async with gate:
            order.append("ack")

    async with asyncio.timeout(10):
        await gate.acquire()  # a first writer holds the lock
        queued_ack = asyncio.create_task(ack())
        await asyncio.sleep(0)
        assert gate.urgent
        queued_worker = asyncio.create_task(worker())
        await asyncio.sleep(0)
        gate.release()
        await asyncio.gather(queued_ack, queued_worker)
    assert order == ["ack", "worker"]
    assert not gate.urgent and not gate.locked()


async def test_a_flood_of_acks_delays_the_worker_by_at_most_max_defer() -> None:
    gate = WriteGate(max_defer_seconds=0.05)
    entered = asyncio.Event()

    async def worker() -> None:
        async with gate.background(exclusive=True):
            entered.set()

    with gate.hold_urgent():  # an ack batch that never ends
        task = asyncio.create_task(worker())
        async with asyncio.timeout(10):
            await entered.wait()
        await task
    assert not gate.locked()


async def test_on_postgresql_the_worker_only_yields_and_never_takes_the_lock() -> None:
    gate = WriteGate()
    # a foreground writer holds the lock: the worker does not wait for it
    async with gate, asyncio.timeout(10), gate.background(exclusive=False):
        assert gate.locked()
