"""Deps: the one frozen bundle of dependencies that handlers and scheduler jobs receive."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.config import Settings

if TYPE_CHECKING:
    from bot.wecom.client import WeComClient


@dataclass(frozen=True)
class Deps:
    config: Settings
    sessions: async_sessionmaker[AsyncSession]
    clock: Clock
    data_dir: Path
    wecom: WeComClient | None = None  # None where nothing talks to WeCom (import, some tests)
