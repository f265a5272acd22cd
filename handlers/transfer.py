"""调拨 / 签收 commands and the transfer approve / reject / ship / receive buttons."""

from __future__ import annotations

from handlers.router import Router

router = Router("transfer")
