"""What each board exports: its rows as a `Table` (the same rows, scope and filters the page shows)."""

from __future__ import annotations

from bot.console.exports import Cell, Table, stamp
from models.boards.effect import EffectBoard
from models.boards.filters import BOARD_TZ
from models.boards.inventory import KIND_NAMES, InventoryBoard
from models.boards.people import PersonLine
from models.boards.tasks import TasksBoard
from models.boards.transfers import SECTION_NAMES, TransfersBoard
from models.photo_review import DECISION_NAMES

EXPORTS = ("inventory", "tasks", "transfers", "leaderboard", "effect")


def inventory_table(board: InventoryBoard, names: dict[int, str]) -> Table:
    rows: list[tuple[Cell, ...]] = []
    for kind, items in board.rows.items():
        rows.extend((KIND_NAMES[kind], names.get(r.store_id, ""), r.sku_code, r.sku_name, r.category or "",
                     r.on_hand, r.safety_stock, stamp(r.last_at, BOARD_TZ)) for r in items)
    return Table("inventory", ("问题", "门店", "商品编码", "商品名称", "品类", "现有库存", "安全库存",
                               "最近销售或变动"), rows)


def tasks_table(board: TasksBoard, names: dict[int, str]) -> Table:
    rows: list[tuple[Cell, ...]] = [
        (d.day, names.get(d.store_id, ""), d.total, d.done, d.late, d.missed, d.open,
         round(d.completion, 4) if d.completion is not None else None)
        for d in board.days
    ]
    return Table("tasks", ("日期", "门店", "任务数", "按时完成", "逾期完成", "未完成", "进行中", "完成率"), rows)


def transfers_table(board: TransfersBoard, names: dict[int, str]) -> Table:
    rows: list[tuple[Cell, ...]] = []
    for section, items in board.sections.items():
        rows.extend((SECTION_NAMES[section], r.transfer_id, names.get(r.from_store_id, ""),
                     names.get(r.to_store_id, ""), r.state_name, r.lines_text, r.missing,
                     stamp(r.created_at, BOARD_TZ), stamp(r.shipped_at, BOARD_TZ), stamp(r.received_at, BOARD_TZ))
                    for r in items)
    return Table("transfers", ("类别", "调拨单号", "调出门店", "调入门店", "状态", "商品", "短缺数量", "申请时间",
                               "出库时间", "签收时间"), rows)


def leaderboard_table(lines: list[PersonLine], month: str) -> Table:
    rows: list[tuple[Cell, ...]] = [
        (month, ln.region_name, ln.rank, ln.name, ln.store_name, ln.points, ln.done, ln.late, ln.missed)
        for ln in lines
    ]
    return Table("leaderboard", ("月份", "区域", "区域排名", "姓名", "门店", "积分", "按时完成", "逾期完成",
                                 "未完成"), rows)


def effect_table(board: EffectBoard, names: dict[int, str]) -> Table:
    rows: list[tuple[Cell, ...]] = []
    for (store_id, month), c in sorted(board.cells.items(), key=lambda kv: (names.get(kv[0][0], ""), kv[0][1])):
        rows.append((names.get(store_id, ""), month, c.counted,
                     round(c.accuracy, 4) if c.accuracy is not None else None, c.stocked,
                     round(c.slow_share, 4) if c.slow_share is not None else None, c.emergencies))
    return Table("effect", ("门店", "月份", "盘点行数", "库存准确率", "在库商品数", "滞销占比", "紧急补货次数"), rows)


def decision_name(decision: str | None) -> str:
    return DECISION_NAMES.get(decision or "", "待审核")


