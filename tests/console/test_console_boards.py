"""The console's boards through the real app: what each role sees, denied cross-store URLs, exports in scope
(XLSX opened back with openpyxl, CSV with a BOM), the photo review, and the filter parameters never a 500."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook
from sqlalchemy import select

from models.photo_review import PhotoReview
from tests.board_support import BoardRows, seed_board_rows
from tests.console_support import csrf_of, sign_in

BOARDS = ("inventory", "tasks", "transfers", "people", "effect", "customers")
# role -> (the store names that must appear somewhere, the store names that must never appear)
SCOPE = {
    "m1": ({"徐汇店"}, {"天河店", "福田店"}),
    "sup1": ({"徐汇店", "静安店"}, {"天河店", "福田店"}),
    "sup2": ({"天河店"}, {"徐汇店", "静安店"}),
    "admin": ({"徐汇店", "天河店"}, set()),
}


@pytest.fixture
async def rows(sessions: Any, chain: Any, settings: Any) -> BoardRows:
    async with sessions() as session, session.begin():
        return await seed_board_rows(session, chain, Path(settings.server.data_dir))


async def _get(client: Any, path: str, user: str | None = None) -> tuple[int, str]:
    if user is not None:
        sign_in(client, user)
    resp = await client.get(path, allow_redirects=False)
    return resp.status, await resp.text()


@pytest.mark.parametrize("user", sorted(SCOPE))
async def test_each_board_shows_only_the_viewers_stores(client: Any, rows: BoardRows, user: str) -> None:
    must, never = SCOPE[user]
    sign_in(client, user)
    seen: set[str] = set()
    for board in BOARDS:
        status, html = await _get(client, f"/console/{board}")
        assert status == 200, (board, html[:500])
        assert "echarts" in html or board == "transfers"
        for name in never:
            assert name not in html, (user, board, name)
        seen |= {name for name in must if name in html}
    assert seen == must


async def test_inventory_board_counts_and_ledger(client: Any, rows: BoardRows) -> None:
    status, html = await _get(client, "/console/inventory?sku=A001", "m1")
    assert status == 200
    assert "负库存的商品" in html and "A001 农夫山泉 550ml" in html
    assert "李小妹" in html  # the ledger names who sold
    assert "待店长审批的盘点" in html and ">9<" in html
    status, html = await _get(client, "/console/inventory?sku=A001", "sup2")
    assert "李小妹" not in html  # S001's sale is outside R2


@pytest.mark.parametrize("user, path", [
    ("m1", "/console/inventory?store=S003"), ("m1", "/console/tasks?store=S002"),
    ("sup1", "/console/transfers?region=R2"), ("sup2", "/console/people?store=S001"),
    ("m1", "/console/export/inventory.csv?store=S003"), ("sup1", "/console/export/tasks.xlsx?region=R2"),
])
async def test_a_cross_store_url_is_denied(client: Any, rows: BoardRows, user: str, path: str) -> None:
    status, body = await _get(client, path, user)
    assert status == 403, body[:300]
    assert "天河店" not in body and "静安店" not in body


@pytest.mark.parametrize("board", ["inventory", "tasks", "transfers", "leaderboard", "effect"])
async def test_exports_need_a_session(client: Any, rows: BoardRows, board: str) -> None:
    for kind in ("csv", "xlsx"):
        status, _ = await _get(client, f"/console/export/{board}.{kind}")
        assert status == 401


def _xlsx_rows(body: bytes) -> list[tuple[Any, ...]]:
    sheet = load_workbook(io.BytesIO(body), read_only=True).worksheets[0]
    return [tuple(r) for r in sheet.iter_rows(values_only=True)]


ALLOWED = {"m1": {"徐汇店"}, "sup1": {"徐汇店", "静安店"}, "sup2": {"天河店", "福田店"},
           "admin": {"徐汇店", "静安店", "天河店", "福田店"}}
STORE_COLUMN = {"inventory": "门店", "tasks": "门店", "leaderboard": "门店", "effect": "门店"}


@pytest.mark.parametrize("user", sorted(SCOPE))
async def test_exports_hold_rows_in_scope_only(client: Any, rows: BoardRows, user: str) -> None:
    must, never = SCOPE[user]
    sign_in(client, user)
    for board in ("inventory", "tasks", "transfers", "leaderboard", "effect"):
        resp = await client.get(f"/console/export/{board}.xlsx")
        assert resp.status == 200, board
        table = _xlsx_rows(await resp.read())
        header, body = table[0], table[1:]
        assert body, (user, board)
        if board == "transfers":
            stores = {c for r in body for c in (r[2], r[3])}
            assert all(c in must or c not in never for c in stores)
            assert any(c in must for c in stores)
        else:
            col = header.index(STORE_COLUMN[board])
            stores = {r[col] for r in body}
            assert stores <= ALLOWED[user], (user, board, stores)
            assert not stores & never
        resp = await client.get(f"/console/export/{board}.csv")
        raw = await resp.read()
        assert raw.startswith(b"\xef\xbb\xbf")
        parsed = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
        assert parsed[0] == [str(h) for h in header] and len(parsed) == len(table)


async def test_leaderboard_ranks_within_the_region(client: Any, rows: BoardRows) -> None:
    sign_in(client, "m1")
    resp = await client.get("/console/export/leaderboard.xlsx?month=2026-11")
    table = _xlsx_rows(await resp.read())
    assert [(r[3], r[2], r[5]) for r in table[1:]] == [("李小妹", 2, 30)]  # 钱多多 (静安店) leads R1 with 50


async def test_photo_accept_and_reject_with_csrf_in_scope_only(client: Any, rows: BoardRows, sessions: Any) -> None:
    status, html = await _get(client, "/console/tasks", "m1")
    assert f'id="photo-{rows.photos["S001"]}"' in html and f'id="photo-{rows.photos["S003"]}"' not in html
    token = csrf_of(html)
    mine, theirs = rows.photos["S001"], rows.photos["S003"]
    img = await client.get(f"/console/photos/{mine}.jpg")
    assert img.status == 200 and (await img.read())[:2] == b"\xff\xd8"
    assert (await client.get(f"/console/photos/{theirs}.jpg")).status == 403
    resp = await client.post(f"/console/photos/{mine}/review", data={"csrf": "nope", "decision": "accepted"},
                             allow_redirects=False)
    assert resp.status == 403
    resp = await client.post(f"/console/photos/{theirs}/review", data={"csrf": token, "decision": "rejected"},
                             allow_redirects=False)
    assert resp.status == 403
    resp = await client.post(f"/console/photos/{mine}/review",
                             data={"csrf": token, "decision": "rejected", "back": "/console/tasks"},
                             allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/console/tasks")
    status, html = await _get(client, "/console/tasks")
    assert "已退回" in html
    resp = await client.post(f"/console/photos/{mine}/review", data={"csrf": token, "decision": "accepted"},
                             allow_redirects=False)
    assert resp.status == 303
    async with sessions() as session:
        reviews = (await session.execute(select(PhotoReview.photo_id, PhotoReview.decision,
                                                PhotoReview.reviewed_by))).all()
    assert reviews == [(mine, "accepted", "m1")]
    sign_in(client, "s1")  # staff may look but not judge
    status, html = await _get(client, "/console/tasks")
    resp = await client.post(f"/console/photos/{mine}/review", data={"csrf": csrf_of(html), "decision": "rejected"},
                             allow_redirects=False)
    assert resp.status == 403


async def test_boards_without_a_session_send_to_the_login(client: Any, rows: BoardRows) -> None:
    for board in BOARDS:
        status, _ = await _get(client, f"/console/{board}")
        assert status == 302


async def test_customer_board_counts_members_of_the_viewers_stores(client: Any, rows: BoardRows) -> None:
    status, html = await _get(client, "/console/customers", "m1")
    assert status == 200 and "冬季回访" not in html  # campaign figures are chain-wide: not for a manager
    assert html.count('<b>1</b><span>') == 3  # active, new, at risk: S001's three members, one each
    status, html = await _get(client, "/console/customers", "sup2")
    assert "冬季回访" in html and "人数 2 少于预期的 100" in html
    assert html.count('<b>1</b><span>') == 2  # S003's dormant and high-potential members


async def test_no_movement_days_set_in_the_console_apply_to_the_board(
    make_client: Any, rows: BoardRows, sessions: Any, settings: Any, clock: Any
) -> None:
    from models.console_settings import save_setting

    async with sessions() as session, session.begin():
        await save_setting(session, settings, "rules.no_movement_days", 30, userid="admin", person="陈总",
                           now=clock.now())
    client = await make_client()
    status, html = await _get(client, "/console/inventory", "admin")
    assert status == 200 and "有库存但 30 天无销售的商品" in html
    assert "<b>0</b><span>有库存但 30 天无销售的商品" in html  # the opening moves are 23 days old


async def test_effect_before_and_after_a_date(client: Any, rows: BoardRows) -> None:
    status, html = await _get(client, "/console/effect?pivot=2026-11-01&from=2026-09-01&to=2026-11-30", "admin")
    assert status == 200 and "2026-11-01 之前 / 之后" in html


async def test_the_old_dashboard_still_works(client: Any, rows: BoardRows) -> None:
    resp = await client.get("/dashboard?token=test-admin-token")
    assert resp.status == 200


async def test_echarts_is_served_from_the_package(client: Any) -> None:
    resp = await client.get("/console/static/echarts-5.6.0/echarts.min.js")
    assert resp.status == 200 and b"echarts" in (await resp.read())[:2000]
    lic = await client.get("/console/static/echarts-5.6.0/LICENSE")
    assert "Apache License" in await lic.text()


PARAMS = ("region", "store", "category", "from", "to", "days", "sku", "pivot", "month", "x")
VALUES = st.one_of(
    st.text(max_size=80),
    st.sampled_from(["R1", "R2", "S001", "S003", "饮料", "2026-11-01", "2026-13-01", "0", "365", "366", "2026-11",
                     "9999-12-31", "²", "1e3", "-1", "", " ", "\x00", "2000-01-01", "2099-12-31"]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(board=st.sampled_from([*BOARDS, "export/inventory.csv", "export/leaderboard.xlsx"]),
       query=st.dictionaries(st.sampled_from(PARAMS), VALUES, max_size=5))
async def test_any_filter_parameters_give_a_page_or_a_clear_400(client: Any, rows: BoardRows, board: str,
                                                                query: dict[str, str]) -> None:
    sign_in(client, "sup1")
    resp = await client.get(f"/console/{board}", params=query, allow_redirects=False)
    body = (await resp.read()).decode("utf-8", "replace")
    assert resp.status in (200, 400, 403), (resp.status, query, body[:300])
    if resp.status == 400:
        assert any(word in body for word in ("请", "要")), body[:300]


@settings(max_examples=500, deadline=None)
@given(query=st.dictionaries(st.sampled_from(PARAMS), VALUES, max_size=8), today=st.dates())
def test_parse_filters_gives_filters_or_a_field_named_error(query: dict[str, str], today: Any) -> None:
    from models.boards.filters import DATE_MAX, DATE_MIN, FilterError, parse_filters

    try:
        f = parse_filters(query, min(max(today, DATE_MIN), DATE_MAX))
    except FilterError as err:
        assert err.field in PARAMS and err.message
        return
    assert DATE_MIN <= f.date_from <= f.date_to <= DATE_MAX
    assert f.days is None or 1 <= f.days <= 365
