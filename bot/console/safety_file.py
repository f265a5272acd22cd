"""Reading a safety-stock file (CSV or XLSX: store, SKU, safety stock per row): any bytes in, lines or Chinese
errors that name the line out, never an exception."""

from __future__ import annotations

import csv
import io
import unicodedata
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from models.console_settings import SAFETY_MAX

MAX_ROWS = 200_000
MAX_ERRORS = 20
STORE_COLUMNS = ("store", "store_code", "门店", "门店编码", "门店代码")
SKU_COLUMNS = ("sku", "sku_code", "商品", "商品编码", "商品代码")
SAFETY_COLUMNS = ("safety_stock", "safety", "安全库存")


@dataclass(frozen=True)
class SafetyLine:
    line: int
    store: str
    sku: str
    value: int


@dataclass
class SafetyFile:
    lines: list[SafetyLine] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(message)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime | date):
        return value.isoformat()
    return unicodedata.normalize("NFKC", str(value)).replace("\x00", "").strip()


def _rows(filename: str, data: bytes) -> Iterator[tuple[int, list[str]]]:
    if filename.lower().endswith(".xlsx"):
        from openpyxl import load_workbook

        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        try:
            for number, values in enumerate(workbook.worksheets[0].iter_rows(values_only=True), start=1):
                yield number, [_cell(v) for v in values]
        finally:
            workbook.close()
        return
    text = data.decode("utf-8-sig")
    reader = csv.reader(io.StringIO(text, newline=""))
    for values in reader:
        yield reader.line_num, [_cell(v) for v in values]


def _column(names: list[str], wanted: tuple[str, ...]) -> int | None:
    return next((i for i, name in enumerate(names) if name.lower() in wanted), None)


def read_safety_file(filename: str, data: bytes) -> SafetyFile:
    out = SafetyFile()
    if not filename.lower().endswith((".csv", ".xlsx")):
        out.fail("请上传 .csv 或 .xlsx 文件。")
        return out
    try:
        rows = _rows(filename, data)
        _, header = next(rows, (1, []))
        columns = [_column(header, wanted) for wanted in (STORE_COLUMNS, SKU_COLUMNS, SAFETY_COLUMNS)]
        if any(c is None for c in columns):
            out.fail("第 1 行要是表头：门店编码, 商品编码, 安全库存（或 store, sku, safety_stock）。")
            return out
        store_i, sku_i, safety_i = (c or 0 for c in columns)
        for number, values in rows:
            if not any(values):
                continue
            if len(out.lines) >= MAX_ROWS:
                out.fail(f"文件超过 {MAX_ROWS} 行，请分成几个文件上传。")
                break
            cells = [values[i] if i < len(values) else "" for i in (store_i, sku_i, safety_i)]
            store, sku, raw = cells[0].upper(), cells[1], cells[2].removesuffix("件").strip()
            if not store or not sku or len(store) > 64 or len(sku) > 64:
                out.fail(f"第 {number} 行：门店编码和商品编码都要填。")
                continue
            if not (raw.isascii() and raw.isdigit()) or len(raw) > 7 or int(raw) > SAFETY_MAX:
                out.fail(f"第 {number} 行：安全库存要填 0 到 {SAFETY_MAX} 的整数，现在是“{raw[:20]}”。")
                continue
            out.lines.append(SafetyLine(number, store, sku, int(raw)))
    except UnicodeDecodeError:
        out.fail("文件不是 UTF-8 编码：在表格软件里另存为“CSV UTF-8”后再上传。")
    except csv.Error as err:
        out.fail(f"读不懂这个 CSV 文件：{err}")
    except (zipfile.BadZipFile, OSError, ValueError, KeyError, TypeError, IndexError):  # openpyxl: not a workbook
        out.fail("读不懂这个 Excel 文件：请确认是 .xlsx 格式。")
    if not out.lines and not out.errors:
        out.fail("文件里没有数据行。")
    return out
