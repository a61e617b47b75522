"""invoices: ix_invoices_contact_paid, for a record's payment behaviour

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-10 10:00:00.000000

Issue 21: how late a customer pays is read from its PAID sales invoices settled in the last
two years (FullyPaidOnDate against DueDate), and its last payment from the latest
FullyPaidOnDate (and the ids of the invoices settled on it): both from this index alone,
however many invoices the customer has. Partial, over PAID invoices only.
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

PAID = "status = 'PAID'"


def upgrade() -> None:
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.create_index(
            'ix_invoices_contact_paid',
            ['tenant_id', 'contact_id', 'status', 'type', 'fully_paid_on', 'due_date', 'invoice_id'],
            unique=False,
            sqlite_where=sa.text(PAID),
            postgresql_where=sa.text(PAID),
        )


def downgrade() -> None:
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_index('ix_invoices_contact_paid', sqlite_where=sa.text(PAID), postgresql_where=sa.text(PAID))
