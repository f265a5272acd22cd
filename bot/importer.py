"""Master-data import: stores, staff, skus and stock from CSV or XLSX, one file atomically."""

from __future__ import annotations

from pathlib import Path

from bot.config import Settings


async def run_import(settings: Settings, paths: list[Path], *, progress: bool = False) -> int:
    print("storebot import: not yet")
    return 1
