"""Members and events: the customers import, POS sales as purchases, the events API and WeCom contact changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import FakeClock
from bot.errors import ImportFileError
from bot.importing.importer import import_files
from bot.keys import DEPS
from bot.sandbox.externalcontact import customer_adds, customer_deletes
from models.customer import Customer, CustomerEvent, CustomerPurchase, CustomerTag
from scheduler.customer_jobs import rebuild_segments
from tests import TESTS
from tests.conftest import AppClient, auth
from tests.customer_support import Member, add_members, make_settings, sell
from tests.factories import Chain
from tests.fixtures_sandbox import Harness

DATA = TESTS / "data" / "import"
Sessions = async_sessionmaker[AsyncSession]

__all__ = ["make_settings"]  # a fixture: the POS date window opened for member history


async def member(sessions: Sessions, customer_id: str) -> Customer:
    async with sessions() as s:
        return (await s.execute(select(Customer).where(Customer.customer_id == customer_id))).scalar_one()


async def count(sessions: Sessions, model: type) -> int:
    async with sessions() as s:
        return int((await s.execute(select(func.count()).select_from(model))).scalar_one())


async def test_customers_import_creates_members_with_tags_and_reimport_changes_nothing(
    sessions: Sessions, chain: Chain, clock: FakeClock,
) -> None:
    reports = await import_files(sessions, [DATA / "customers.csv"], clock=clock)
    assert (reports[0].created, reports[0].updated) == (3, 0)
    c1 = await member(sessions, "C001")
    assert (c1.phone, c1.phone_tail, c1.external_userid, c1.follow_userid) == ("13800001234", "1234", "wmEXT001", "s1")
    assert c1.joined_at == datetime(2026, 1, 14, 16, 0, tzinfo=UTC)  # midnight in Shanghai
    assert (await member(sessions, "C002")).phone == "13900005678"
    async with sessions() as s:
        tags = sorted((await s.execute(select(CustomerTag.tag))).scalars())
    assert tags == ["新客", "母婴", "高频"]
    again = await import_files(sessions, [DATA / "customers.csv"], clock=clock)
    assert (again[0].created, again[0].updated, again[0].unchanged) == (0, 0, 3)


async def test_customers_import_unknown_store_stops_the_file(
    sessions: Sessions, chain: Chain, clock: FakeClock, tmp_path: Path,
) -> None:
    bad = tmp_path / "customers.csv"
    bad.write_text("customer_id,home_store\nC1,S001\nC2,S999\n", encoding="utf-8")
    with pytest.raises(ImportFileError, match=r"customers.csv:3.*S999"):
        await import_files(sessions, [bad], clock=clock)
    assert await count(sessions, Customer) == 0


async def test_sale_with_member_updates_running_figures_once_even_when_replayed(
    client: AppClient, chain: Chain, sessions: Sessions, clock: FakeClock,
) -> None:
    await add_members(sessions, chain, [Member("C001")], clock.now())
    at = clock.now() - timedelta(days=2)
    await sell(client, "P1", "C001", 30.0, at)
    await sell(client, "P2", "C001", 20.5, at - timedelta(days=5))
    replay = await sell(client, "P1", "C001", 30.0, at)
    assert replay["duplicate"] is True
    c = await member(sessions, "C001")
    assert (c.purchases_total, float(c.spend_total), c.last_purchase_at) == (2, 50.5, at)
    assert await count(sessions, CustomerPurchase) == 2


async def test_stored_windows_and_stage_follow_each_sale_and_the_rebuild_drops_what_left_a_window(
    client: AppClient, chain: Chain, sessions: Sessions, clock: FakeClock,
) -> None:
    """The profile reads stored figures: a sale adds itself to the windows that contain it and moves the stage at
    once; the scheduled rebuild recomputes them, so a purchase that left the 30-day window is dropped."""
    now = clock.now()
    await add_members(sessions, chain, [Member("C001", joined_at=now - timedelta(days=300))], now)
    await sell(client, "P1", "C001", 40.0, now - timedelta(days=100))  # only the 365-day window
    body = await (await client.get("/api/customers/C001", headers=auth())).json()
    assert (body["stage"], body["purchases_30d"], body["purchases_90d"], body["purchases_365d"]) == \
        ("dormant", 0, 0, 1)
    await sell(client, "P2", "C001", 25.0, now - timedelta(days=1))
    await sell(client, "P2", "C001", 25.0, now - timedelta(days=1))  # a replay adds nothing
    body = await (await client.get("/api/customers/C001", headers=auth())).json()
    assert (body["stage"], body["purchases_30d"], body["spend_30d"], body["spend_365d"]) == ("active", 1, 25.0, 65.0)
    clock.advance(days=31)
    await rebuild_segments(client.app[DEPS])
    body = await (await client.get("/api/customers/C001", headers=auth())).json()
    assert (body["stage"], body["purchases_30d"], body["purchases_90d"], body["purchases_365d"]) == \
        ("at_risk", 0, 1, 2)
    async with sessions() as s:  # the same figures as counted from the purchases themselves
        c = (await s.execute(select(Customer).where(Customer.customer_id == "C001"))).scalar_one()
        assert (c.purchases_30d, c.purchases_90d, float(c.spend_90d), c.stage) == (0, 1, 25.0, "at_risk")


async def test_sale_with_unknown_member_still_books_the_sale(client: AppClient, chain: Chain, sessions: Sessions,
                                                             clock: FakeClock) -> None:
    body = await sell(client, "P9", "NOBODY", 10.0, clock.now())
    assert body["duplicate"] is False
    assert await count(sessions, CustomerPurchase) == 0


def _event(event_id: str, customer_id: str = "C001", type_: str = "visit") -> dict[str, str]:
    return {"event_id": event_id, "customer_id": customer_id, "type": type_, "at": "2026-11-24T10:00:00+08:00",
            "store": "S001"}


async def test_events_are_idempotent_by_event_id(client: AppClient, chain: Chain, sessions: Sessions,
                                                 clock: FakeClock) -> None:
    await add_members(sessions, chain, [Member("C001"), Member("C002")], clock.now())
    r = await client.post("/api/customers/events", json={"events": [_event("E1"), _event("E2", "C002", "view")]},
                          headers=auth())
    assert (r.status, await r.json()) == (200, {"accepted": 2, "duplicates": 0})
    r = await client.post("/api/customers/events", json={"events": [_event("E1"), _event("E3", type_="mp_order")]},
                          headers=auth())
    assert (r.status, await r.json()) == (200, {"accepted": 1, "duplicates": 1})
    assert await count(sessions, CustomerEvent) == 3


async def test_event_batch_with_unknown_customer_is_422_and_stores_nothing(
    client: AppClient, chain: Chain, sessions: Sessions, clock: FakeClock,
) -> None:
    await add_members(sessions, chain, [Member("C001")], clock.now())
    r = await client.post("/api/customers/events", json={"events": [_event("E1"), _event("E2", "C404")]},
                          headers=auth())
    assert r.status == 422
    assert "events.1.customer_id" in (await r.json())["error"] and "C404" in (await r.json())["error"]
    r = await client.post("/api/customers/events", json={"events": [_event("E1"), _event("E2", type_="dance")]},
                          headers=auth())
    assert r.status == 422 and "events.1.type" in (await r.json())["error"]
    assert await count(sessions, CustomerEvent) == 0
    r = await client.post("/api/customers/events", json={"events": [_event("E1")]})
    assert r.status == 401


async def test_contact_added_and_deleted_keeps_the_wecom_link_current(
    harness: Harness, chain: Chain, sessions: Sessions,
) -> None:
    await add_members(sessions, chain, [Member("C001"), Member("C002", external_userid="wmB", follow_userid="s1")],
                      harness.clock.now())
    outcome = await customer_adds(harness.sandbox, "s2", "wmA", state="C001")  # a contact way carrying the member id
    assert outcome.ok
    await harness.settle()
    c1 = await member(sessions, "C001")
    assert (c1.external_userid, c1.follow_userid) == ("wmA", "s2")
    assert (await customer_deletes(harness.sandbox, "s1", "wmB")).ok
    await harness.settle()
    c2 = await member(sessions, "C002")
    assert (c2.external_userid, c2.follow_userid) == ("wmB", None)
    assert harness.texts_for("s1") == [] and harness.texts_for("s2") == []  # WeCom's events get no reply
