"""Board exports as files: CSV (UTF-8 with a BOM, so Excel opens the Chinese right) and XLSX (openpyxl)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime

from openpyxl import Workbook

Cell = str | int | float | None


@dataclass(frozen=True)
class Table:
    name: str  # file name stem and sheet title
    headers: tuple[str, ...]
    rows: list[tuple[Cell, ...]]


def _safe(value: Cell) -> Cell:
    """A text cell that a spreadsheet would read as a formula (=, +, -, @) is prefixed with an apostrophe."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def to_csv(table: Table) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(table.headers)
    writer.writerows([_safe(v) for v in row] for row in table.rows)
    return "\ufeff".encode() + out.getvalue().encode("utf-8")


def to_xlsx(table: Table) -> bytes:
    book = Workbook(write_only=True)
    sheet = book.create_sheet(title=table.name[:31])
    sheet.append(list(table.headers))
    for row in table.rows:
        sheet.append([_safe(v) for v in row])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def stamp(at: datetime | None, tz: object) -> str:
    """A timestamp as people read it in the board's time zone."""
    if at is None:
        return ""
    return at.astimezone(tz).strftime("%Y-%m-%d %H:%M")  # type: ignore[arg-type]


