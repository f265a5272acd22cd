"""Deps: the one frozen bundle of dependencies that handlers and scheduler jobs receive."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.config import Settings
from bot.write_gate import WriteGate, gate

if TYPE_CHECKING:
    from bot.wecom.client import WeComClient


@dataclass(frozen=True)
class Deps:
    config: Settings
    sessions: async_sessionmaker[AsyncSession]
    clock: Clock
    data_dir: Path
    wecom: WeComClient | None = None  # None where nothing talks to WeCom (import, some tests)
    write_gate: WriteGate | None = None  # SQLite's one writer, queued in process (bot.keys.WRITE_LOCK)

    def writing(self, session: AsyncSession) -> AbstractAsyncContextManager[Any]:
        """Enter before a background transaction: bot.write_gate.gate for this session's database."""
        return gate(self.write_gate, sqlite=session.get_bind().dialect.name == "sqlite", background=True)
