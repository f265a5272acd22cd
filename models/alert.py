"""Stock alerts (low stock, no movement, negative stock), their escalation tokens and digests."""

from __future__ import annotations
