"""sync_state: when each kind was last swept, and when a sweep last found an unannounced change

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 18:50:00.000000

Issue 17: reconciliation follows the evidence (worker.cadence) instead of the clock, so each
kind keeps its own last sweep time.
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

COLUMNS = ('contacts_swept_at', 'invoices_swept_at', 'payments_swept_at', 'unannounced_at')


def upgrade() -> None:
    with op.batch_alter_table('sync_state', schema=None) as batch_op:
        for name in COLUMNS:
            batch_op.add_column(sa.Column(name, sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('sync_state', schema=None) as batch_op:
        for name in reversed(COLUMNS):
            batch_op.drop_column(name)
