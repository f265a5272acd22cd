"""API params and paths: any value gets 2xx or 4xx with {"error": ...} naming the field, never a 500."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import AppClient, auth
from tests.factories import Chain

PROPS = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.mark.parametrize(("path", "field"), [
    ("/api/transfers/99999999999999999999", "id"),
    ("/api/transfers/0", "id"),
    ("/api/outbox?limit=²", "limit"),
    ("/api/outbox?limit=99999999999999999999", "limit"),
    ("/api/outbox?limit=" + "9" * 5000, "limit"),
    ("/api/metrics/stores?from=0001-01-01&to=9999-12-31", "from"),
    ("/api/metrics/stores?to=9999-12-31", "to"),
    ("/api/tasks?date=9999-12-31", "date"),
    ("/api/tasks?date=²", "date"),
    ("/api/tasks/99999999999999999999/answers", "id"),
    ("/api/alerts?store=%00", "store"),
    ("/api/stock?store=S001&sku=%00", "sku"),
])
async def test_bad_param_or_path_gets_400_naming_the_field(client: AppClient, chain: Chain, path: str,
                                                          field: str) -> None:
    resp = await client.get(path, headers=auth())
    assert resp.status == 400
    assert (await resp.json())["error"].startswith(f"{field}:")


@pytest.mark.parametrize("path", ["/api/alerts/99999999999999999999/ack", "/api/outbox/99999999999999999999/retry",
                                  "/api/outbox/²/retry"])
async def test_bad_id_in_a_post_path_gets_400(client: AppClient, chain: Chain, path: str) -> None:
    resp = await client.post(path, headers=auth())
    assert resp.status == 400 and (await resp.json())["error"].startswith("id:")


@pytest.mark.parametrize("path", ["/api/transfers/2147483647", "/api/transfers/²", "/api/transfers/abc",
                                  "/api/transfers/%E1%8D%A9"])
async def test_transfer_id_in_range_but_unknown_or_no_number_is_404(client: AppClient, chain: Chain,
                                                                    path: str) -> None:
    resp = await client.get(path, headers=auth())
    assert resp.status == 404 and "No transfer" in (await resp.json())["error"]


async def test_nul_in_a_json_body_is_refused_naming_the_field(client: AppClient, chain: Chain) -> None:
    body = {"title": "盘\x00点", "stores": ["S001"]}
    resp = await client.post("/api/tasks/broadcast", json=body, headers=auth())
    assert resp.status == 422 and (await resp.json())["error"].startswith("title:")


async def test_deeply_nested_json_body_is_400(client: AppClient, chain: Chain) -> None:
    resp = await client.post("/api/transfers", data="[" * 100_000 + "]" * 100_000, headers=auth())
    assert resp.status == 400


PARAM_VALUE = st.one_of(
    st.sampled_from(["²", "፩", "99999999999999999999", "0", "-1", "1", "S001", "A001", "0001-01-01", "9999-12-31",
                     "2026-11-24", "20261124", "%", "\x00", "", "9" * 5000, "failed", "app"]),
    st.text(max_size=20), st.integers(min_value=-(10**30), max_value=10**30).map(str),
)
GETS = st.sampled_from([
    ("/api/outbox", ("limit", "state", "channel", "recipient")),
    ("/api/metrics/stores", ("from", "to")),
    ("/api/tasks", ("store", "date")),
    ("/api/alerts", ("store", "state")),
    ("/api/stock", ("store", "sku")),
])
PATHS = st.sampled_from(["/api/transfers/{}", "/api/tasks/{}/answers"])


@PROPS
@given(route=GETS, values=st.lists(PARAM_VALUE, min_size=2, max_size=4))
async def test_any_query_value_is_answered_without_a_server_error(client: AppClient, chain: Chain,
                                                                  route: tuple[str, tuple[str, ...]],
                                                                  values: list[str]) -> None:
    path, names = route
    query = "&".join(f"{name}={quote(value)}" for name, value in zip(names, values, strict=False))
    resp = await client.get(f"{path}?{query}", headers=auth())
    assert resp.status < 500, (path, query, await resp.text())
    if resp.status >= 400:
        assert "error" in await resp.json()


@PROPS
@given(template=PATHS, value=PARAM_VALUE)
async def test_any_path_id_is_answered_without_a_server_error(client: AppClient, chain: Chain, template: str,
                                                              value: str) -> None:
    resp = await client.get(template.format(quote(value, safe="")), headers=auth())
    assert resp.status < 500, (template, value, await resp.text())
    if resp.status >= 400:
        assert "error" in await resp.json()


SCALAR = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
                   st.floats(allow_nan=False), st.text(max_size=12),
                   st.sampled_from(["S001", "S002", "A001", "6900000000011", "s3", "m1", "morning_check", "staff",
                                    "text", "\x00", "²", 5, 1, 0, -1, 10**20, "9" * 5000]))
JSON = st.recursive(SCALAR, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                   st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                    max_leaves=8)
LINE = st.fixed_dictionaries({"sku": SCALAR, "qty": SCALAR})
BODIES = st.sampled_from(["/api/transfers", "/api/tasks/run", "/api/tasks/broadcast"]).flatmap(
    lambda path: st.tuples(st.just(path), st.one_of(JSON, st.fixed_dictionaries({}, optional={
        "from_store": SCALAR, "to_store": SCALAR, "requested_by": SCALAR, "lines": st.lists(LINE, max_size=3),
        "template": SCALAR, "stores": st.lists(SCALAR, max_size=3), "title": SCALAR, "body": SCALAR,
        "role": SCALAR, "proof": SCALAR, "due_minutes": SCALAR, "points": SCALAR, "urgent": SCALAR}))))


@PROPS
@given(call=BODIES)
async def test_any_json_body_is_answered_without_a_server_error(client: AppClient, chain: Chain,
                                                                call: tuple[str, object]) -> None:
    path, body = call
    resp = await client.post(path, json=body, headers=auth())
    assert resp.status < 500, (path, body, await resp.text())
    if resp.status >= 400:
        assert "error" in await resp.json()
