"""Task instances per (template, store, period): proofs, reminders, missed stocktakes."""

from __future__ import annotations
