"""inbox_events: index the delivery_id foreign key

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05 08:20:00.000000

Deleting a webhook_deliveries row makes the database find the events that point at it (ON
DELETE SET NULL). Without an index that is a scan of the whole inbox, which is never pruned:
the intake deletes the delivery row of every duplicate delivery (nothing new came of it), so a
redelivery cost time in proportion to every event ever received (measured on SQLite: 0.3 ms at
1,000 events, 11.9 ms at 80,000), and the intake's one writer stores deliveries one batch at a time.
"""
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('inbox_events', schema=None) as batch_op:
        batch_op.create_index('ix_inbox_delivery', ['delivery_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('inbox_events', schema=None) as batch_op:
        batch_op.drop_index('ix_inbox_delivery')
