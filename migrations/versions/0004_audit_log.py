"""audit_log table; webhook_events.raw_body

Revision ID: 0004
Revises: 0002
Create Date: 2026-11-29 20:00:00

"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'audit_log',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), primary_key=True,
                  autoincrement=True),
        sa.Column('at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column('action', sa.String(64), nullable=False),
        sa.Column('outcome', sa.String(64), nullable=False),
        sa.Column('user_id', sa.String(255)),
        sa.Column('ip', sa.String(64)),
        sa.Column('request_id', sa.String(64)),
        sa.Column('stripe_object', sa.String(255)),
        sa.Column('detail', sa.String(500)),
    )
    op.create_index('idx_audit_log_user_at', 'audit_log', ['user_id', 'at'])
    op.create_index('idx_audit_log_at', 'audit_log', ['at'])
    # Nullable, no default: instant on PostgreSQL, no table rebuild on SQLite.
    op.add_column('webhook_events', sa.Column('raw_body', sa.Text()))


def downgrade():
    with op.batch_alter_table('webhook_events') as batch:
        batch.drop_column('raw_body')
    op.drop_index('idx_audit_log_at', table_name='audit_log')
    op.drop_index('idx_audit_log_user_at', table_name='audit_log')
    op.drop_table('audit_log')
