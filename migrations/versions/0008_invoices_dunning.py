"""Invoices kept from invoice.* webhooks, the user's payment action (dunning), the email
last sent to their Stripe customer, and credit packs (one-time purchases of generations).

Revision ID: 0008_invoices_dunning
Revises: 0007_plan_changes
Create Date: 2026-12-05 06:30:00

"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '0008_invoices_dunning'
down_revision = '0007_plan_changes'
branch_labels = None
depends_on = None


def USER_COLUMNS():
    return [
        sa.Column('payment_action', sa.String(20)),
        sa.Column('payment_action_invoice', sa.String(255)),
        sa.Column('payment_action_url', sa.Text()),
        sa.Column('payment_action_since', sa.BigInteger()),
        sa.Column('stripe_customer_email', sa.String(255)),
        sa.Column('credit_balance', sa.Integer(), nullable=False, server_default='0'),
    ]


def upgrade():
    op.create_table(
        'invoices',
        sa.Column('id', sa.String(255), primary_key=True),
        sa.Column('user_id', sa.String(255), sa.ForeignKey('users.id', ondelete='SET NULL')),
        sa.Column('customer_id', sa.String(255)),
        sa.Column('subscription_id', sa.String(255)),
        sa.Column('number', sa.String(255)),
        sa.Column('status', sa.String(50)),
        sa.Column('billing_reason', sa.String(50)),
        sa.Column('currency', sa.String(10)),
        sa.Column('amount_due', sa.BigInteger()),
        sa.Column('amount_paid', sa.BigInteger()),
        sa.Column('amount_tax', sa.BigInteger()),
        sa.Column('total', sa.BigInteger()),
        sa.Column('hosted_invoice_url', sa.Text()),
        sa.Column('invoice_pdf', sa.Text()),
        sa.Column('period_start', sa.BigInteger()),
        sa.Column('period_end', sa.BigInteger()),
        sa.Column('stripe_created', sa.BigInteger()),
        sa.Column('last_event_created', sa.BigInteger()),
        sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
    )
    op.create_index('ix_invoices_user_created', 'invoices', ['user_id', 'stripe_created'])
    op.create_index('ix_invoices_customer_id', 'invoices', ['customer_id'])
    op.create_table(
        'credit_purchases',
        sa.Column('session_id', sa.String(255), primary_key=True),
        sa.Column('user_id', sa.String(255), nullable=False),
        sa.Column('generations', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
    )
    # Plain ADD/DROP COLUMN (SQLite >= 3.35 has both): no rebuild of `users`, whose DROP
    # would fire ON DELETE SET NULL on every table that points at it (see 0002).
    for column in USER_COLUMNS():
        op.add_column('users', column)


def downgrade():
    for column in reversed(USER_COLUMNS()):
        op.drop_column('users', column.name)
    op.drop_table('credit_purchases')
    op.drop_index('ix_invoices_customer_id', 'invoices')
    op.drop_index('ix_invoices_user_created', 'invoices')
    op.drop_table('invoices')
