"""Master-data import files read into rows: kinds, columns, cell parsers, the job and its report."""

from __future__ import annotations

import csv
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from tqdm import tqdm

from bot.errors import ImportFileError

log = logging.getLogger(__name__)

# also the order files are imported in: each needs the one before
KINDS = ("stores", "staff", "skus", "stock", "customers")
# kind -> (columns that must be in the header, columns that may be)
COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "stores": (("code", "name", "region"), ("latitude", "longitude", "chat_id", "timezone")),
    "staff": (("userid", "name", "role"), ("store", "region")),
    "skus": (("code", "name"), ("barcode", "category", "unit", "price")),
    "stock": (("store", "sku", "on_hand"), ("safety_stock",)),
    "customers": (("customer_id",), ("name", "phone", "home_store", "external_userid", "follow_userid", "joined_at",
                                     "tags")),
}
SUFFIXES = (".csv", ".xlsx")
PROGRESS_MIN_ROWS = 2000  # smaller files finish before a bar would be worth drawing


@dataclass(frozen=True)
class Row:
    """One data row: its line in the file (the header is line 1) and its cells by column name, stripped."""

    line: int
    cells: dict[str, str]

    def get(self, column: str) -> str:
        return self.cells.get(column, "")


@dataclass
class ImportReport:
    file: str
    kind: str
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    moves: int = 0

    def summary(self) -> str:
        moves = f", {self.moves} stock moves" if self.kind == "stock" else ""
        return (
            f"{self.file}: {self.rows} rows — {self.created} created, {self.updated} updated, "
            f"{self.unchanged} unchanged{moves}"
        )


@dataclass(frozen=True)
class ImportJob:
    """What an importer gets: the file's name (for errors), its rows, the time to book moves at, progress on?"""

    file: str
    rows: list[Row]
    at: datetime
    progress: bool

    def bad(self, row: Row | None, reason: str) -> ImportFileError:
        return ImportFileError(self.file, row.line if row else None, reason)

    def bar(self, rows: Iterable[Row], desc: str) -> Iterator[Row]:
        show = self.progress and len(self.rows) >= PROGRESS_MIN_ROWS
        yield from tqdm(rows, total=len(self.rows), desc=f"{Path(self.file).name} {desc}", unit="row",
                        disable=not show, leave=False)

    def chunks(self, total: int, size: int, desc: str) -> Iterator[int]:
        """Chunk offsets over `total` rows, with a bar counting rows written."""
        show = self.progress and total >= PROGRESS_MIN_ROWS
        with tqdm(total=total, desc=f"{Path(self.file).name} {desc}", unit="row", disable=not show,
                  leave=False) as bar:
            for start in range(0, total, size):
                yield start
                bar.update(min(size, total - start))

    # Cell parsers: each returns the typed value or raises ImportFileError naming the line and the column.

    def text(self, row: Row, column: str, *, required: bool = False, max_len: int = 256) -> str:
        value = row.get(column)
        if required and not value:
            raise self.bad(row, f"{column} is empty")
        if len(value) > max_len:
            raise self.bad(row, f"{column} is longer than {max_len} characters")
        return value

    def whole(self, row: Row, column: str, *, required: bool = False) -> int | None:
        raw = row.get(column)
        if not raw:
            if required:
                raise self.bad(row, f"{column} is empty")
            return None
        try:
            number = Decimal(raw.replace(",", ""))
        except InvalidOperation:
            number = Decimal("NaN")
        if not number.is_finite() or number != number.to_integral_value() or number < 0:
            raise self.bad(row, f"{column} must be a whole number of 0 or more, got {raw!r}")
        if number > 2**31 - 1:
            raise self.bad(row, f"{column} is too large: {raw!r}")
        return int(number)

    def decimal(self, row: Row, column: str) -> Decimal | None:
        raw = row.get(column)
        if not raw:
            return None
        try:
            number = Decimal(raw.replace(",", "").lstrip("¥￥"))
        except InvalidOperation:
            number = Decimal("NaN")
        if not number.is_finite() or number < 0 or number >= Decimal("1e10"):
            raise self.bad(row, f"{column} must be a number of 0 or more, got {raw!r}")
        return number.quantize(Decimal("0.01"))

    def coordinate(self, row: Row, column: str, limit: float) -> float | None:
        raw = row.get(column)
        if not raw:
            return None
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        if not -limit <= value <= limit:
            raise self.bad(row, f"{column} must be a number between -{limit:g} and {limit:g}, got {raw!r}")
        return value


Importer = Callable[[AsyncSession, ImportJob, ImportReport], Awaitable[None]]


def kind_of(path: Path) -> str:
    kind = path.stem.lower()
    if kind not in KINDS:
        raise ImportFileError(str(path), None, f"unknown kind {path.stem!r}: name the file {', '.join(KINDS)} "
                                               f"(with .csv or .xlsx)")
    if path.suffix.lower() not in SUFFIXES:
        raise ImportFileError(str(path), None, f"unsupported file type {path.suffix!r}: use .csv or .xlsx")
    return kind


def _cell(value: Any) -> str:
    """An XLSX cell as the text a CSV would hold: 12.0 → "12", 6900000000011 stays whole, dates ISO."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value).strip()


def _read_raw(path: Path) -> Iterator[tuple[int, list[str]]]:
    if path.suffix.lower() == ".xlsx":
        from openpyxl import load_workbook

        workbook = load_workbook(path, read_only=True, data_only=True)
        try:
            sheet = workbook.worksheets[0]
            for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
                yield number, [_cell(v) for v in values]
        finally:
            workbook.close()
        return
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        for values in reader:
            yield reader.line_num, [v.strip() for v in values]


def read_rows(path: Path, kind: str) -> list[Row]:
    """The file's data rows keyed by its header; blank rows skipped; a missing required column is an error."""
    file = str(path)
    try:
        raw = _read_raw(path)
        header_line, header = next(raw, (1, []))
        names = [h.strip().lstrip("\ufeff").lower() for h in header]
        required, optional = COLUMNS[kind]
        for column in required:
            if column not in names:
                expected = ",".join(required + optional)
                raise ImportFileError(file, header_line, f"missing column {column!r} (header: {expected})")
        wanted = {name: i for i, name in reversed(list(enumerate(names))) if name in required + optional}
        rows = []
        for line, values in raw:
            if not any(values):
                continue
            cells = {name: values[i] if i < len(values) else "" for name, i in wanted.items()}
            rows.append(Row(line, cells))
        return rows
    except FileNotFoundError as err:
        raise ImportFileError(file, None, "file not found") from err
    except UnicodeDecodeError as err:
        raise ImportFileError(file, None, "not UTF-8 text: save the sheet as \"CSV UTF-8\"") from err
    except csv.Error as err:
        raise ImportFileError(file, None, f"not a readable CSV file: {err}") from err
    except (OSError, ValueError, KeyError) as err:  # openpyxl: not a zip / not a workbook
        raise ImportFileError(file, None, f"cannot read the file: {err}") from err
