"""Master-data import: stores, staff, skus and stock from CSV or XLSX, one file atomically."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import db
from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.errors import ImportFileError
from bot.importing.customers import import_customers
from bot.importing.kinds import import_skus, import_staff, import_stock, import_stores
from bot.importing.rows import KINDS, Importer, ImportJob, ImportReport, kind_of, read_rows

__all__ = ["KINDS", "ImportReport", "import_files", "run_import"]

log = logging.getLogger(__name__)


def _importers() -> dict[str, Importer]:
    return {"stores": import_stores, "staff": import_staff, "skus": import_skus, "stock": import_stock,
            "customers": import_customers}


async def import_files(
    sessions: async_sessionmaker[AsyncSession], paths: Iterable[Path], *, clock: Clock, progress: bool = False
) -> list[ImportReport]:
    """Import every file in dependency order, each in its own transaction: a bad row raises ImportFileError
    and leaves that file's data (and everything after it) unwritten; files before it stay imported."""
    paths = list(paths)
    for path in paths:
        kind_of(path)
        if not path.is_file():
            raise ImportFileError(str(path), None, "file not found")
    ordered = sorted(paths, key=lambda p: KINDS.index(kind_of(p)))
    importers = _importers()
    reports = []
    for path in ordered:
        kind = kind_of(path)
        rows = await asyncio.to_thread(read_rows, path, kind)  # big files parse off the event loop
        job = ImportJob(str(path), rows, clock.now(), progress)
        report = ImportReport(file=str(path), kind=kind, rows=len(job.rows))
        async with sessions() as session, session.begin():
            await importers[kind](session, job, report)
        log.info("%s", report.summary())
        reports.append(report)
    return reports


async def run_import(settings: Settings, paths: list[Path], *, progress: bool = False) -> int:
    """`storebot import PATH...`: print one summary line per file; ImportFileError propagates (exit 2)."""
    engine = db.make_engine(settings.database)
    try:
        await db.prepare_schema(settings.database, engine)
        reports = await import_files(db.session_factory(engine), paths, clock=SystemClock(), progress=progress)
    finally:
        await engine.dispose()
    for report in reports:
        print(report.summary())
    return 0
