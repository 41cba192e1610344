"""Plan changes, seats and trials: subscriptions.quantity (mirrored on users) and
subscriptions.trial_will_end_at

Revision ID: 0007_plan_changes
Revises: 0006
Create Date: 2026-12-05 06:30:00

"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '0007_plan_changes'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    # Nullable, no default: a row written before this migration says nothing about seats
    # (read as one) until its next event or read brings the quantity.
    op.add_column('subscriptions', sa.Column('quantity', sa.Integer(), nullable=True))
    op.add_column('users', sa.Column('quantity', sa.Integer(), nullable=True))
    op.add_column('subscriptions', sa.Column('trial_will_end_at', sa.BigInteger(), nullable=True))


def downgrade():
    op.drop_column('subscriptions', 'trial_will_end_at')
    op.drop_column('users', 'quantity')
    op.drop_column('subscriptions', 'quantity')
