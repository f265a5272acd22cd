"""The callback endpoint at wecom.callback_path: verify, decrypt, store in the inbox, answer 200."""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    """Placeholder until the WeCom-edge issue lands: registers no route."""
