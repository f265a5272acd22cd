"""The console: the web side for managers, supervisors and head office (login, settings, boards)."""

from __future__ import annotations

from aiohttp import web


def setup_console(app: web.Application) -> None:
    """Register the console's route tables and its background settings reload."""
    from bot.console import auth, boards, safety, settings_pages

    for module in (auth, settings_pages, safety, boards):
        app.router.add_routes(module.routes)
    app.cleanup_ctx.append(safety.imports_ctx)  # safety-stock files applied in the background
