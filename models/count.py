"""Stock counts from chat: counted vs system, approval of large discrepancies, accuracy."""

from __future__ import annotations
