"""invoices.last_settled_on, for a record's last payment

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 02:30:00.000000

Issue 21: a record's last payment was found by probing the payments and allocations of every
invoice still open with something settled (1,200 of them for the heaviest customer of the
reads benchmark: 30 ms). Each invoice now keeps the date of its latest live payment or
allocation (store.mirror.refresh_last_settled, called wherever they are written), so the last
payment is one seek of ix_invoices_contact_settled. The upgrade fills it from the mirror.
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

SETTLED = "last_settled_on IS NOT NULL"

FILL = """
UPDATE invoices SET last_settled_on = (
    SELECT max(d) FROM (
        SELECT max(payments.date) AS d FROM payments
        WHERE payments.tenant_id = invoices.tenant_id AND payments.invoice_id = invoices.invoice_id
          AND payments.status != 'DELETED'
        UNION ALL
        SELECT max(allocations.date) AS d FROM allocations
        WHERE allocations.tenant_id = invoices.tenant_id AND allocations.invoice_id = invoices.invoice_id
    ) AS settled
)
WHERE EXISTS (
    SELECT 1 FROM payments WHERE payments.tenant_id = invoices.tenant_id
        AND payments.invoice_id = invoices.invoice_id AND payments.status != 'DELETED'
) OR EXISTS (
    SELECT 1 FROM allocations WHERE allocations.tenant_id = invoices.tenant_id
        AND allocations.invoice_id = invoices.invoice_id
)
"""


def upgrade() -> None:
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_settled_on', sa.Date(), nullable=True))
    op.execute(FILL)
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.create_index(
            'ix_invoices_contact_settled',
            ['tenant_id', 'contact_id', 'last_settled_on', 'type', 'status'],
            unique=False,
            sqlite_where=sa.text(SETTLED),
            postgresql_where=sa.text(SETTLED),
        )


def downgrade() -> None:
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_index('ix_invoices_contact_settled', sqlite_where=sa.text(SETTLED),
                            postgresql_where=sa.text(SETTLED))
        batch_op.drop_column('last_settled_on')
