"""库存 / 盘点 commands, scan-in/out conversations and the count-approval buttons."""

from __future__ import annotations

from handlers.router import Router

router = Router("stock")
