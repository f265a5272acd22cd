"""Location messages and LOCATION events: remembered to tag later photos."""

from __future__ import annotations

from handlers.router import Router

router = Router("location")
