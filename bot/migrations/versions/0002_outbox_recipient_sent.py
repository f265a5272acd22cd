"""outbox: indexes for the claim's order and for budgets

The per-member budget counts what was sent to a member inside the last hour. With an index on recipient alone
that read every message the member ever got; (recipient, sent_at) reads only the window. It also serves
`GET /api/outbox?recipient=`, so it replaces the recipient index.

The claim takes due rows in (next_attempt_at, id) order. Without id in the index PostgreSQL sorted every due row
on each claim (a backlog of 100k rows meant sorting 100k rows per batch); with it the order is read off the index.

Revision ID: 0002_outbox_recipient_sent
Revises: 0001_initial
Create Date: 2026-11-24 19:32:37.347515
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002_outbox_recipient_sent"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_recipient"))
        batch_op.create_index("ix_outbox_recipient_sent", ["recipient", "sent_at"], unique=False)
        batch_op.drop_index("ix_outbox_state_next")
        batch_op.create_index("ix_outbox_state_next", ["state", "next_attempt_at", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_state_next")
        batch_op.create_index("ix_outbox_state_next", ["state", "next_attempt_at"], unique=False)
        batch_op.drop_index("ix_outbox_recipient_sent")
        batch_op.create_index(batch_op.f("ix_outbox_recipient"), ["recipient"], unique=False)
