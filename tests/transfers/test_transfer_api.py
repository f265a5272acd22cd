"""/api/transfers through the real app: create with validation (422 naming the field, nothing written) and read."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import FakeClock
from bot.deps import Deps
from models.outbox import OutboundMessage
from models.transfer import Transfer
from tests.conftest import AppClient, auth
from tests.factories import Chain
from tests.transfers.test_transfer import click, run

GOOD: dict[str, Any] = {"from_store": "S001", "to_store": "S002", "requested_by": "s3",
                        "lines": [{"sku": "A001", "qty": 4}, {"sku": "6900000000028", "qty": 2}]}


async def count(sessions: async_sessionmaker[AsyncSession], model: type[Any]) -> int:
    async with sessions() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


async def test_create_then_read_follows_the_transfer_through_shipping(
    client: AppClient, chain: Chain, deps: Deps, clock: FakeClock
) -> None:
    r = await client.post("/api/transfers", json={**GOOD, "urgent": True}, headers=auth())
    assert r.status == 201, await r.text()
    created = await r.json()
    assert {k: created[k] for k in ("from_store", "to_store", "state", "urgent", "emergency")} == {
        "from_store": "S001", "to_store": "S002", "state": "requested", "urgent": True, "emergency": True}
    assert [(line["sku"], line["qty"], line["shipped"], line["received"]) for line in created["lines"]] == [
        ("A001", 4, None, None), ("A002", 2, None, None)]
    tid = created["id"]
    async with deps.sessions() as session:
        stmt = select(OutboundMessage).where(OutboundMessage.recipient == "sup1")
        card = (await session.execute(stmt.where(OutboundMessage.msgtype == "template_card"))).scalar_one()
    assert card.payload["button_list"][0]["key"] == f"transfer:approve:{tid}"

    await run(deps, click(clock, "sup1", f"transfer:approve:{tid}"))
    await run(deps, click(clock, "m1", f"transfer:ship:{tid}"))
    r = await client.get(f"/api/transfers/{tid}", headers=auth())
    view = await r.json()
    assert view["state"] == "shipped"
    assert view["shipped_at"] == clock.now().isoformat()
    assert view["in_transit"] == 6
    assert [(line["shipped"], line["in_transit"]) for line in view["lines"]] == [(4, 4), (2, 2)]
    r = await client.get("/api/stock", params={"store": "S002", "sku": "A001"}, headers=auth())
    assert (await r.json())["in_transit"] == 4  # the stock answer shows what is on its way


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"from_store": None}, "from_store"),
        ({"lines": []}, "lines"),
        ({"lines": [{"sku": "A001", "qty": 0}]}, "lines.0.qty"),
        ({"lines": [{"sku": "A001", "qty": "many"}]}, "lines.0.qty"),
        ({"from_store": "S999"}, "from_store"),
        ({"to_store": "S999"}, "to_store"),
        ({"from_store": "S002"}, "from_store"),
        ({"lines": [{"sku": "A001", "qty": 1}, {"sku": "NOPE", "qty": 1}]}, "lines.1.sku"),
        ({"requested_by": "nobody"}, "requested_by"),
        ({"requested_by": "m1"}, "requested_by"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_bad_request_is_422_naming_the_field_and_writes_nothing(
    client: AppClient, chain: Chain, deps: Deps, change: dict[str, Any], field: str
) -> None:
    body = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    r = await client.post("/api/transfers", json=body, headers=auth())
    assert r.status == 422
    assert (await r.json())["error"].startswith(f"{field}:")
    assert await count(deps.sessions, Transfer) == 0
    assert await count(deps.sessions, OutboundMessage) == 0


async def test_needs_the_token_and_unknown_ids_are_404(client: AppClient, chain: Chain) -> None:
    assert (await client.post("/api/transfers", json=GOOD)).status == 401
    assert (await client.get("/api/transfers/1")).status == 401
    for ident in ("999", "abc"):
        r = await client.get(f"/api/transfers/{ident}", headers=auth())
        assert r.status == 404
        assert "error" in await r.json()
    r = await client.post("/api/transfers", data=b"{not json", headers=auth())
    assert r.status == 400
