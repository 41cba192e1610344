"""checkout_claims: one checkout under way per user (issue 18, double-click checkout)

Revision ID: 0009_checkout_claims
Revises: 0008_invoices_dunning
Create Date: 2026-12-05 06:30:00

"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '0009_checkout_claims'
down_revision = '0008_invoices_dunning'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'checkout_claims',
        sa.Column('user_id', sa.String(255), sa.ForeignKey('users.id', ondelete='CASCADE'),
                  primary_key=True),
        sa.Column('token', sa.String(64)),
        sa.Column('price_id', sa.String(255)),
        sa.Column('claimed_at', sa.DateTime(timezone=True)),
        sa.Column('session_id', sa.String(255)),
        sa.Column('session_url', sa.Text()),
        sa.Column('customer_id', sa.String(255)),
        sa.Column('made_at', sa.DateTime(timezone=True)),
    )


def downgrade():
    op.drop_table('checkout_claims')
