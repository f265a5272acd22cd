"""stock counts: booked_qty, superseded_by, index on store, sku, counted_at

A count now books its difference at its own moment and the newest count of a store x SKU wins: booked_qty is
the adjustment actually booked (None: nothing), superseded_by the newer count that replaced or outdated it.
The (store, sku, counted_at) index serves "is there a newer count of this pair".

Revision ID: 0003_stock_integrity
Revises: 0002_outbox_recipient_sent
Create Date: 2026-12-02 07:20:08.189518
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003_stock_integrity'
down_revision: str | None = '0002_outbox_recipient_sent'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('stock_counts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('booked_qty', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('superseded_by', sa.Integer(), nullable=True))
        batch_op.create_index('ix_stock_counts_pair_at', ['store_id', 'sku_id', 'counted_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('stock_counts', schema=None) as batch_op:
        batch_op.drop_index('ix_stock_counts_pair_at')
        batch_op.drop_column('superseded_by')
        batch_op.drop_column('booked_qty')
