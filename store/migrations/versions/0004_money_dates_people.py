"""allocations, contact emails, merges, organisation time zone, natural invoice order

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 18:20:00.000000

Issue 16: credit notes, prepayments and overpayments applied to invoices (allocations); the
addresses of a contact's ContactPersons (contact_emails); MergedToContactID; the
organisation's Timezone on the connection; invoices.number_key for natural number order, with
ix_invoices_contact_status rebuilt around (status, type) equalities and the summary's amounts.
"""
import re

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

NUMBER_KEY = sa.String(400).with_variant(sa.String(400, collation="C"), "postgresql")
_DIGITS = re.compile(r"\d+")


def _number_key(number):
    """Frozen copy of store.natural.number_key as of this revision."""
    if number is None:
        return None
    return _DIGITS.sub(lambda m: (m.group().lstrip("0") or "0").rjust(20, "0"), number.lower())[:400]


def upgrade() -> None:
    op.create_table(
        'allocations',
        sa.Column('tenant_id', sa.String(length=64), nullable=False),
        sa.Column('invoice_id', sa.String(length=64), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('document_id', sa.String(length=64), nullable=False),
        sa.Column('seq', sa.Integer(), nullable=False),
        sa.Column('number', sa.String(length=255), nullable=True),
        sa.Column('date', sa.Date(), nullable=True),
        sa.Column('amount', sa.BigInteger(), nullable=False),
        sa.Column('synced_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('tenant_id', 'invoice_id', 'kind', 'document_id', 'seq'),
    )
    with op.batch_alter_table('allocations', schema=None) as batch_op:
        batch_op.create_index('ix_allocations_document', ['tenant_id', 'document_id'], unique=False)

    op.create_table(
        'contact_emails',
        sa.Column('tenant_id', sa.String(length=64), nullable=False),
        sa.Column('contact_id', sa.String(length=64), nullable=False),
        sa.Column('email_lower', sa.String(length=320), nullable=False),
        sa.Column('source', sa.String(length=16), nullable=False),
        sa.Column('person_name', sa.String(length=300), nullable=True),
        sa.PrimaryKeyConstraint('tenant_id', 'contact_id', 'email_lower'),
    )
    with op.batch_alter_table('contact_emails', schema=None) as batch_op:
        batch_op.create_index('ix_contact_emails_email', ['tenant_id', 'email_lower'], unique=False)

    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('merged_to_contact_id', sa.String(length=64), nullable=True))

    with op.batch_alter_table('xero_connections', schema=None) as batch_op:
        batch_op.add_column(sa.Column('timezone', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('organisation_checked_at', sa.DateTime(), nullable=True))

    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('number_key', NUMBER_KEY, nullable=True))
        batch_op.drop_index('ix_invoices_contact_status')

    bind = op.get_bind()
    invoices = sa.table(
        'invoices', sa.column('tenant_id'), sa.column('invoice_id'), sa.column('invoice_number'),
        sa.column('number_key'),
    )
    rows = bind.execute(
        sa.select(invoices.c.tenant_id, invoices.c.invoice_id, invoices.c.invoice_number)
        .where(invoices.c.invoice_number.is_not(None))
    ).all()
    if rows:
        bind.execute(
            invoices.update()
            .where(invoices.c.tenant_id == sa.bindparam('t'), invoices.c.invoice_id == sa.bindparam('i'))
            .values(number_key=sa.bindparam('k')),
            [{'t': t, 'i': i, 'k': _number_key(n)} for t, i, n in rows],
        )
    # Existing contacts' ContactPersons arrive with their next sync
    # (`flask --app wsgi ops resync TENANT` brings them all at once).

    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.create_index(
            'ix_invoices_contact_status',
            ['tenant_id', 'contact_id', 'status', 'type', 'date', 'number_key', 'amount_due', 'due_date',
             'currency_code', 'currency_rate', 'total', 'amount_paid', 'amount_credited'],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_index('ix_invoices_contact_status')
        batch_op.drop_column('number_key')
        batch_op.create_index(
            'ix_invoices_contact_status',
            ['tenant_id', 'contact_id', 'status', 'date', 'invoice_number', 'amount_due', 'due_date', 'type',
             'currency_code', 'currency_rate', 'total'],
            unique=False,
        )
    with op.batch_alter_table('xero_connections', schema=None) as batch_op:
        batch_op.drop_column('organisation_checked_at')
        batch_op.drop_column('timezone')
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.drop_column('merged_to_contact_id')
    op.drop_table('contact_emails')
    op.drop_table('allocations')
