"""invoices: index for a record's saved views and totals

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 06:10:00.000000
"""
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # (tenant, contact, status) are equalities in every saved view, then the list's order
    # (date, number), then what the view filters and the summary adds up, so the page, its
    # count and the totals are read from this index (covering for the count and the totals).
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.create_index(
            'ix_invoices_contact_status',
            ['tenant_id', 'contact_id', 'status', 'date', 'invoice_number', 'amount_due', 'due_date', 'type',
             'currency_code', 'currency_rate', 'total'],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_index('ix_invoices_contact_status')
