"""customer stage history per day

Revision ID: 0016_stage_days
Revises: 0015_camp
Create Date: 2026-12-02 13:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0016_stage_days'
down_revision: str | None = '0015_camp'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('customer_stage_days',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('stage', sa.String(length=16), nullable=False),
    sa.Column('store_id', sa.Integer(), nullable=True),
    sa.Column('members', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['store_id'], ['stores.id'], name=op.f('fk_customer_stage_days_store_id_stores'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customer_stage_days')),
    sa.UniqueConstraint('day', 'stage', 'store_id', name=op.f('uq_customer_stage_days_day_stage_store_id'))
    )
    op.create_index(op.f('ix_customer_stage_days_store_id'), 'customer_stage_days', ['store_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_customer_stage_days_store_id'), table_name='customer_stage_days')
    op.drop_table('customer_stage_days')
