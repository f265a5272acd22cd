"""Deps: the one frozen bundle of dependencies that handlers and scheduler jobs receive."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.config import Settings
from bot.live_settings import LiveSettings
from bot.write_gate import WriteGate, gate

if TYPE_CHECKING:
    from bot.wecom.client import WeComClient


@dataclass(frozen=True, init=False)
class Deps:
    live: LiveSettings
    sessions: async_sessionmaker[AsyncSession]
    clock: Clock
    data_dir: Path
    wecom: WeComClient | None  # None where nothing talks to WeCom (import, some tests)
    write_gate: WriteGate | None  # SQLite's one writer, queued in process (bot.keys.WRITE_LOCK)

    def __init__(
        self, config: Settings | None = None, sessions: async_sessionmaker[AsyncSession] | None = None,
        clock: Clock | None = None, data_dir: Path | None = None, wecom: WeComClient | None = None,
        live: LiveSettings | None = None, write_gate: WriteGate | None = None,
    ) -> None:
        """Given `config`, fixed settings (a fresh holder; `replace(deps, config=...)` keeps working); given only
        `live`, the app's holder, which the console's reload keeps current."""
        if config is not None:
            live = LiveSettings(config)
        if live is None or sessions is None or clock is None or data_dir is None:
            raise TypeError("Deps needs config or live, sessions, clock and data_dir")
        object.__setattr__(self, "live", live)
        object.__setattr__(self, "sessions", sessions)
        object.__setattr__(self, "clock", clock)
        object.__setattr__(self, "data_dir", data_dir)
        object.__setattr__(self, "wecom", wecom)
        object.__setattr__(self, "write_gate", write_gate)

    @property
    def config(self) -> Settings:
        """The settings in effect now: config.toml's seed with the console's overrides laid over it."""
        return self.live.current

    def writing(self, session: AsyncSession) -> AbstractAsyncContextManager[Any]:
        """Enter before a background transaction: bot.write_gate.gate for this session's database."""
        return gate(self.write_gate, sqlite=session.get_bind().dialect.name == "sqlite", background=True)
