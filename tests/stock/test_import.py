"""Master-data import: CSV and XLSX through the real importer, read back through the real API; bad files change
nothing; re-imports are idempotent; the CLI exits 2 with file:line."""

from __future__ import annotations

import csv
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.cli import main
from bot.clock import FakeClock
from bot.errors import ImportFileError
from bot.importing.importer import KINDS, ImportReport, import_files
from models.catalog import Sku
from models.org import Region, Staff, Store
from models.stock import StockLevel, StockMove, book_move
from tests import TESTS
from tests.conftest import AppClient, auth

DATA = TESTS / "data"
GOOD = [DATA / "import" / f"{kind}.csv" for kind in KINDS if kind != "customers"]  # tests/test_customers_*
Sessions = async_sessionmaker[AsyncSession]


async def snapshot(sessions: Sessions) -> dict[str, Any]:
    """Everything the import writes, keyed by natural keys (no ids), to compare two imports."""
    async with sessions() as s:
        regions = {r.id: r.code for r in (await s.scalars(select(Region))).all()}
        stores = {st.id: st for st in (await s.scalars(select(Store))).all()}
        skus = {k.id: k for k in (await s.scalars(select(Sku))).all()}
        staff = (await s.scalars(select(Staff))).all()
        levels = (await s.scalars(select(StockLevel))).all()
        moves = (await s.scalars(select(StockMove))).all()
    return {
        "regions": sorted(regions.values()),
        "stores": sorted((st.code, st.name, regions[st.region_id], st.latitude, st.longitude, st.chat_id,
                          st.timezone) for st in stores.values()),
        "staff": sorted((p.userid, p.name, p.role, stores[p.store_id].code if p.store_id else None,
                         regions.get(p.region_id or 0)) for p in staff),
        "skus": sorted((k.code, k.barcode, k.name, k.category, k.unit, k.price) for k in skus.values()),
        "levels": sorted((stores[lv.store_id].code, skus[lv.sku_id].code, lv.on_hand, lv.safety_stock)
                         for lv in levels),
        "moves": sorted((stores[m.store_id].code, skus[m.sku_id].code, m.kind, m.qty, m.balance_after)
                        for m in moves),
    }


async def counts(sessions: Sessions) -> dict[str, int]:
    async with sessions() as s:
        return {model.__tablename__: (await s.execute(select(func.count()).select_from(model))).scalar_one()
                for model in (Region, Store, Staff, Sku, StockLevel, StockMove)}


def write_xlsx(csv_path: Path, folder: Path) -> Path:
    """The same rows as an XLSX workbook, numbers as numbers the way Excel stores them."""
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    with csv_path.open(encoding="utf-8-sig", newline="") as f:
        for n, row in enumerate(csv.reader(f)):
            cells: list[Any] = []
            for value in row:
                if n and value.replace(".", "", 1).isdigit() and len(value) < 16:
                    cells.append(float(value) if "." in value else int(value))
                else:
                    cells.append(value or None)
            sheet.append(cells)
    out = folder / f"{csv_path.stem}.xlsx"
    workbook.save(out)
    return out


async def test_csv_import_then_api_returns_the_row(
    sessions: Sessions, clock: FakeClock, make_client: Callable[..., Awaitable[AppClient]]
) -> None:
    reports = await import_files(sessions, reversed(GOOD), clock=clock)  # any order: stores go first
    assert [r.kind for r in reports] == [k for k in KINDS if k != "customers"]
    assert [(r.created, r.updated, r.unchanged) for r in reports] == [(3, 0, 0), (7, 0, 0), (4, 0, 0), (5, 0, 0)]
    client = await make_client()
    r = await client.get("/api/stock", params={"store": "S001", "sku": "A001"}, headers=auth())
    assert r.status == 200
    assert await r.json() == {"store": "S001", "sku": "A001", "on_hand": 20, "safety_stock": 5, "in_transit": 0}
    snap = await snapshot(sessions)
    # opening balances are ledger moves; a zero opening needs no move; the barcode finds the SKU too
    assert snap["moves"] == [("S001", "A001", "opening", 20, 20), ("S001", "A002", "opening", 12, 12),
                             ("S002", "A001", "opening", 7, 7), ("S003", "A004", "opening", 30, 30)]
    assert ("S001", "A003", 0, 3) in snap["levels"]
    assert ("S003", "A004", 30, 0) in snap["levels"]
    assert snap["regions"] == ["华东区", "华南区"]
    assert ("sup1", "郑督导", "supervisor", None, "华东区") in snap["staff"]
    assert ("m1", "王店长", "manager", "S001", "华东区") in snap["staff"]  # region from the store


async def test_xlsx_gives_the_same_result_as_csv(
    sessions: Sessions, clock: FakeClock, tmp_path: Path, make_client: Callable[..., Awaitable[AppClient]]
) -> None:
    await import_files(sessions, [write_xlsx(p, tmp_path) for p in GOOD], clock=clock)
    from_xlsx = await snapshot(sessions)
    assert len(from_xlsx["levels"]) == 5
    # the CSV twin on top changes nothing at all: same values, no moves
    reports = await import_files(sessions, GOOD, clock=clock)
    assert all(r.created == r.updated == 0 and r.moves == 0 for r in reports), [r.summary() for r in reports]
    assert await snapshot(sessions) == from_xlsx
    client = await make_client()
    r = await client.get("/api/stock", params={"store": "S001", "sku": "6900000000028"}, headers=auth())
    assert await r.json() == {"store": "S001", "sku": "A002", "on_hand": 12, "safety_stock": 4, "in_transit": 0}


async def test_second_import_changes_nothing_and_a_changed_count_books_the_difference(
    sessions: Sessions, clock: FakeClock, tmp_path: Path
) -> None:
    await import_files(sessions, GOOD, clock=clock)
    before = await snapshot(sessions)
    again = await import_files(sessions, GOOD, clock=clock)
    assert [(r.created, r.updated, r.moves) for r in again] == [(0, 0, 0)] * 4
    assert await snapshot(sessions) == before

    stock = tmp_path / "stock.csv"
    stock.write_text("store,sku,on_hand,safety_stock\nS001,A001,17,5\nS001,A002,12,9\n", encoding="utf-8")
    clock.advance(hours=1)
    [report] = await import_files(sessions, [stock], clock=clock)
    assert (report.updated, report.unchanged, report.moves) == (2, 0, 1)
    after = await snapshot(sessions)
    assert set(after["moves"]) - set(before["moves"]) == {("S001", "A001", "import_adjustment", -3, 17)}
    assert ("S001", "A001", 17, 5) in after["levels"]
    assert ("S001", "A002", 12, 9) in after["levels"]  # safety line set directly, no move
    async with sessions() as s:
        level = (await s.scalars(select(StockLevel).join(Sku).where(Sku.code == "A001")
                                 .order_by(StockLevel.store_id))).first()
    assert level is not None and level.last_moved_at == clock.now()


async def test_reimport_after_a_sale_books_the_difference_from_the_current_balance(
    sessions: Sessions, clock: FakeClock
) -> None:
    await import_files(sessions, GOOD, clock=clock)
    async with sessions() as s, s.begin():
        store_id = (await s.scalars(select(Store.id).where(Store.code == "S001"))).one()
        sku_id = (await s.scalars(select(Sku.id).where(Sku.code == "A001"))).one()
        await book_move(s, store_id=store_id, sku_id=sku_id, kind="sale", qty=-3, at=clock.now(), ref="sale:1")
    [*_, report] = await import_files(sessions, GOOD, clock=clock)  # the file still says 20
    assert (report.updated, report.moves) == (1, 1)
    moves = (await snapshot(sessions))["moves"]
    assert ("S001", "A001", "sale", -3, 17) in moves
    assert ("S001", "A001", "import_adjustment", 3, 20) in moves


async def test_bad_row_in_xlsx_names_the_sheet_row(sessions: Sessions, clock: FakeClock, tmp_path: Path) -> None:
    await import_files(sessions, GOOD[:3], clock=clock)
    source = tmp_path / "src" / "stock.csv"
    source.parent.mkdir()
    source.write_text("store,sku,on_hand\nS001,A001,4\nS001,A002,2.5\n", encoding="utf-8")
    xlsx = write_xlsx(source, tmp_path)
    with pytest.raises(ImportFileError) as info:
        await import_files(sessions, [xlsx], clock=clock)
    assert str(info.value) == f"{xlsx}:3: on_hand must be a whole number of 0 or more, got '2.5'"
    assert (await counts(sessions))["stock_levels"] == 0


BAD_FILES = [
    ("stock.csv", "store,sku,on_hand,safety_stock\nS001,A001,5,1\nS001,A002,6,1\nS001,Z999,1,1\n", 4,
     "unknown sku 'Z999'"),
    ("stock.csv", "store,sku,on_hand\nS001,A001,5\nS404,A002,6\n", 3, "unknown store 'S404'"),
    ("stock.csv", "store,sku,on_hand\nS001,A001,5\nS001,A002,six\n", 3, "on_hand must be a whole number"),
    ("stock.csv", "store,sku,on_hand\nS001,A001,5\nS001,A002,-1\n", 3, "on_hand must be a whole number"),
    ("stock.csv", "store,sku,on_hand\nS001,A001,5\nS001,6900000000011,6\n", 3, "duplicate row"),
    ("skus.csv", "code,barcode,name\nB001,,新品\nB001,,又一个\n", 3, "duplicate sku code 'B001'"),
    ("skus.csv", "code,barcode,name\nB001,6900000000011,新品\n", 2, "already used by sku 'A001'"),
    ("skus.csv", "code,name,price\nB001,新品,free\n", 2, "price must be a number"),
    ("staff.csv", "userid,name,role,store\nx1,新人,staff,S001\nx2,老板,boss,S001\n", 3, "role must be one of"),
    ("staff.csv", "userid,name,role,store\nx1,新人,staff,S404\n", 2, "unknown store 'S404'"),
    ("staff.csv", "userid,name,role,store,region\nx1,新人,staff,S001,华南区\n", 2, "not in region"),
    ("stores.csv", "code,name,region,timezone\nS010,新店,华南区,\nS011,新店,华南区,Mars/Base\n", 3,
     "unknown timezone"),
    ("stores.csv", "code,name,region,latitude\nS010,新店,华南区,123\n", 2, "latitude must be a number between"),
    ("stores.csv", "code,name\nS010,新店\n", 1, "missing column 'region'"),
]


@pytest.mark.parametrize(("name", "content", "line", "reason"), BAD_FILES)
async def test_bad_row_reports_file_line_and_changes_nothing(
    sessions: Sessions, clock: FakeClock, tmp_path: Path, name: str, content: str, line: int, reason: str
) -> None:
    await import_files(sessions, GOOD, clock=clock)
    before, before_counts = await snapshot(sessions), await counts(sessions)
    bad = tmp_path / name
    bad.write_text(content, encoding="utf-8")
    with pytest.raises(ImportFileError) as info:
        await import_files(sessions, [bad], clock=clock)
    assert (info.value.file, info.value.line) == (str(bad), line)
    assert reason in info.value.reason
    assert str(info.value).startswith(f"{bad}:{line}: ")
    assert await counts(sessions) == before_counts
    assert await snapshot(sessions) == before


async def test_bom_is_tolerated(sessions: Sessions, clock: FakeClock) -> None:
    assert (DATA / "import_bom" / "stores.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    [report] = await import_files(sessions, [DATA / "import_bom" / "stores.csv"], clock=clock)
    assert report.created == 1
    assert (await snapshot(sessions))["stores"] == [("S009", "番禺店", "华南区", None, None, None, "Asia/Shanghai")]


async def test_unknown_kind_or_missing_file_is_refused_before_anything_is_written(
    sessions: Sessions, clock: FakeClock, tmp_path: Path
) -> None:
    odd = tmp_path / "prices.csv"
    odd.write_text("code\nA1\n", encoding="utf-8")
    with pytest.raises(ImportFileError, match="unknown kind 'prices'"):
        await import_files(sessions, [GOOD[0], odd], clock=clock)
    with pytest.raises(ImportFileError, match="file not found"):
        await import_files(sessions, [GOOD[0], tmp_path / "stock.csv"], clock=clock)
    assert (await counts(sessions))["stores"] == 0


def _config(tmp_path: Path, auto_migrate: bool = True) -> Path:
    cfg = tmp_path / "storebot.toml"
    cfg.write_text(f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path / "cli.db"}"\n'
                   f"auto_migrate = {'true' if auto_migrate else 'false'}\n", encoding="utf-8")
    return cfg


def test_cli_import_migrates_then_a_bad_file_exits_2_with_file_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _config(tmp_path)
    assert main(["import", *map(str, GOOD), "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "stock.csv: 5 rows — 5 created, 0 updated, 0 unchanged, 4 stock moves" in out
    folder = tmp_path / "bad"
    folder.mkdir()
    shutil.copy(GOOD[2], folder / "skus.csv")
    (folder / "stock.csv").write_text("store,sku,on_hand\nS001,A001,3\nS001,A001,4\n", encoding="utf-8")
    assert main(["import", str(folder / "skus.csv"), str(folder / "stock.csv"), "--config", str(cfg)]) == 2
    assert f"{folder / 'stock.csv'}:3: duplicate row" in capsys.readouterr().err


def test_cli_import_on_outdated_schema_without_auto_migrate_says_to_upgrade(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["import", str(GOOD[0]), "--config", str(_config(tmp_path, auto_migrate=False))]) == 1
    assert "storebot db upgrade" in capsys.readouterr().err


def test_report_summary_reads_well() -> None:
    report = ImportReport(file="stock.csv", kind="stock", rows=3, created=1, updated=1, unchanged=1, moves=2)
    assert report.summary() == "stock.csv: 3 rows — 1 created, 1 updated, 1 unchanged, 2 stock moves"
