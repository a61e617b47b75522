"""xero_connections: the admin session a pending connection belongs to

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08 10:00:00.000000

Issue 19: a pending connection is saved or discarded only by the admin session that
consented to it; the column holds that session's digest (never the session id itself).
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('xero_connections', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pending_session', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('xero_connections', schema=None) as batch_op:
        batch_op.drop_column('pending_session')
