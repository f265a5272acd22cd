"""customers: stored windowed figures (30/90/365 days) kept by each sale and the segment rebuild

Revision ID: 0012_customers2
Revises: 0010_cards
Create Date: 2026-12-02 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0012_customers2'
down_revision: str | None = '0010_cards'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (("purchases_30d", False), ("spend_30d", True), ("purchases_90d", False), ("spend_90d", True),
           ("purchases_365d", False), ("spend_365d", True))


def upgrade() -> None:
    with op.batch_alter_table('customers', schema=None) as batch_op:
        for name, money in COLUMNS:
            kind = sa.Numeric(precision=14, scale=2) if money else sa.Integer()
            batch_op.add_column(sa.Column(name, kind, server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('customers', schema=None) as batch_op:
        for name, _ in reversed(COLUMNS):
            batch_op.drop_column(name)
