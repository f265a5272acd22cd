"""Image messages: photo proof for the sender's open photo task."""

from __future__ import annotations

from handlers.router import Router

router = Router("photo")
