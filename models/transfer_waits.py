"""When a transfer's reminders and escalations fall due: the steps and their waits, a pure function of now."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.config import RulesSettings
from models.transfer import Transfer

APPROVAL_REMIND = "approval_remind"
APPROVAL_ESCALATE = "approval_escalate"
RECEIPT_OVERDUE = "receipt_overdue"
RECEIPT_ADMIN = "receipt_admin"


@dataclass(frozen=True)
class Waits:
    remind: timedelta
    escalate: timedelta
    receipt: timedelta
    receipt_admin: timedelta  # counted from the supervisor's notice

    @classmethod
    def from_rules(cls, rules: RulesSettings) -> Waits:
        return cls(
            remind=timedelta(hours=rules.transfer_approval_remind_hours),
            escalate=timedelta(hours=rules.transfer_approval_escalate_hours),
            receipt=timedelta(hours=rules.transfer_receipt_timeout_hours),
            receipt_admin=timedelta(hours=rules.transfer_receipt_admin_hours),
        )


def due_steps(now: datetime, transfer: Transfer, waits: Waits) -> list[str]:
    """The steps whose time has come for this transfer in its current state (fired or not)."""
    if transfer.state == "requested":
        waited = now - transfer.created_at
        return [step for step, wait in ((APPROVAL_REMIND, waits.remind), (APPROVAL_ESCALATE, waits.escalate))
                if waited >= wait]
    if transfer.state == "shipped" and transfer.shipped_at is not None:
        waited = now - transfer.shipped_at
        return [step for step, wait in ((RECEIPT_OVERDUE, waits.receipt),
                                        (RECEIPT_ADMIN, waits.receipt + waits.receipt_admin)) if waited >= wait]
    return []
