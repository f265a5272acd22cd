"""ECharts options for the boards (plain dicts the page hands to the vendored echarts.min.js as JSON)."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Any

from models.boards.customers import STAGE_NAMES, CustomersBoard
from models.boards.effect import METRIC_NAMES, EffectBoard, by_month
from models.boards.filters import Filters
from models.boards.people import PersonLine
from models.boards.tasks import DayLine

MAX_SERIES = 8  # more stores than this: one line for all of them together


def _days(filters: Filters) -> list[str]:
    n = (filters.date_to - filters.date_from).days + 1
    return [(filters.date_from + timedelta(days=i)).isoformat() for i in range(n)]


def _line(title: str, x: list[str], series: dict[str, list[float | None]], *, percent: bool = False,
          mark: str | None = None) -> dict[str, Any]:
    items: list[dict[str, Any]] = [{"name": k, "type": "line", "data": v, "connectNulls": True,
                                    "showAllSymbol": True, "symbolSize": 7} for k, v in series.items()]
    if mark is not None and items:
        items[0]["markLine"] = {"symbol": "none", "data": [{"xAxis": mark, "name": "对比日期"}],
                                "label": {"formatter": "对比日期"}}
    return {
        "title": {"text": title, "textStyle": {"fontSize": 14}},
        "tooltip": {"trigger": "axis"},
        "legend": {"type": "scroll", "bottom": 0},
        "grid": {"left": 48, "right": 16, "top": 40, "bottom": 48},
        "xAxis": {"type": "category", "data": x},
        "yAxis": {"type": "value", "max": 100 if percent else None, "min": 0, "minInterval": 0 if percent else 1,
                  "axisLabel": {"formatter": "{value}%" if percent else "{value}"}},
        "series": items,
    }


def accuracy(rows: list[tuple[str, int, int, int]], names: dict[int, str], filters: Filters) -> dict[str, Any] | None:
    """Count accuracy (%) per day: one line per store, or one for all when there are many stores."""
    if not rows:
        return None
    x = _days(filters)
    stores = sorted({s for _, s, _, _ in rows})
    sums: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for day, store_id, ok, n in rows:
        key = names.get(store_id, str(store_id)) if len(stores) <= MAX_SERIES else "全部所选门店"
        sums[(key, day)][0] += ok
        sums[(key, day)][1] += n
    series: dict[str, list[float | None]] = {}
    for key in sorted({k for k, _ in sums}):
        series[key] = [round(100 * sums[(key, d)][0] / sums[(key, d)][1], 1) if (key, d) in sums else None
                       for d in x]
    return _line("盘点准确率（%，差异在容差内的盘点行 ÷ 盘点行）", x, series, percent=True)


def task_days(days: list[DayLine], filters: Filters) -> dict[str, Any] | None:
    """Tasks due per day by outcome, stacked."""
    if not days:
        return None
    x = _days(filters)
    parts = {"按时完成": "done", "逾期完成": "late", "未完成": "missed", "进行中": "open"}
    totals: dict[str, dict[str, int]] = {k: defaultdict(int) for k in parts}
    for d in days:
        for label, attr in parts.items():
            totals[label][d.day] += getattr(d, attr)
    colors = {"按时完成": "#2f9e44", "逾期完成": "#f08c00", "未完成": "#e03131", "进行中": "#adb5bd"}
    return {
        "title": {"text": "每天到期的任务（个），按结果", "textStyle": {"fontSize": 14}},
        "tooltip": {"trigger": "axis"}, "legend": {"bottom": 0},
        "grid": {"left": 40, "right": 16, "top": 40, "bottom": 48},
        "xAxis": {"type": "category", "data": x}, "yAxis": {"type": "value", "minInterval": 1},
        "series": [{"name": k, "type": "bar", "stack": "all", "itemStyle": {"color": colors[k]},
                    "data": [totals[k].get(d, 0) for d in x]} for k in parts],
    }


def points(lines: list[PersonLine]) -> dict[str, Any] | None:
    if not lines:
        return None
    top = sorted(lines, key=lambda ln: -ln.points)[:15][::-1]
    return {
        "title": {"text": "本月积分（分），前 15 名", "textStyle": {"fontSize": 14}},
        "tooltip": {}, "grid": {"left": 90, "right": 24, "top": 36, "bottom": 24},
        "xAxis": {"type": "value", "minInterval": 1},
        "yAxis": {"type": "category", "data": [f"{ln.name}·{ln.store_name}" for ln in top]},
        "series": [{"type": "bar", "data": [ln.points for ln in top], "itemStyle": {"color": "#1f6feb"},
                    "barMaxWidth": 24, "label": {"show": True, "position": "right", "color": "#333"}}],
    }


def effect(board: EffectBoard, metric: str, names: dict[int, str], filters: Filters) -> dict[str, Any] | None:
    values = by_month(board, metric)
    if not any(v is not None for vs in values.values() for v in vs):
        return None
    percent = metric != "emergencies"
    series: dict[str, list[float | None]] = {}
    if len(values) <= MAX_SERIES:
        for store_id, vs in values.items():
            series[names.get(store_id, str(store_id))] = [
                round(v * 100, 1) if percent and v is not None else v for v in vs]
    else:
        per_month = list(zip(*values.values(), strict=True))
        series["所选门店平均" if percent else "所选门店合计"] = [
            _combine([v for v in col if v is not None], percent) for col in per_month]
    mark = f"{filters.pivot.year:04d}-{filters.pivot.month:02d}" if filters.pivot else None
    unit = "%" if percent else "次"
    return _line(f"{METRIC_NAMES[metric]}（{unit}，每月）", board.months, series, percent=percent, mark=mark)


def _combine(values: list[float], percent: bool) -> float | None:
    if not values:
        return None
    return round(100 * sum(values) / len(values), 1) if percent else float(sum(values))


def customers(board: CustomersBoard) -> dict[str, Any] | None:
    if not board.months or not (any(board.joined.values()) or any(board.buyers.values())):
        return None
    return _line("会员：每月新加入与有购买的人数（人）", board.months, {
        "新加入": [float(board.joined.get(m, 0)) for m in board.months],
        "有购买": [float(board.buyers.get(m, 0)) for m in board.months],
    })


def stages(board: CustomersBoard) -> dict[str, Any]:
    return {"labels": [STAGE_NAMES[k] for k in board.stages], "values": list(board.stages.values())}


def stage_days(board: CustomersBoard, filters: Filters) -> dict[str, Any] | None:
    """Members per stage per day, stacked areas (a day without a snapshot is a gap)."""
    if not board.history:
        return None
    x = _days(filters)
    option = _line("会员阶段每天的人数（人）", x, {
        STAGE_NAMES[k]: [float(board.history[(d, k)]) if (d, k) in board.history else None for d in x]
        for k in STAGE_NAMES})
    for item in option["series"]:
        item.update({"stack": "stages", "areaStyle": {}, "connectNulls": False, "symbolSize": 4})
    return option
