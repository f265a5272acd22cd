"""The points ledger (one entry per user and task instance) and the monthly leaderboards."""

from __future__ import annotations
