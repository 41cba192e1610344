"""webhook_events as an inbox: next_attempt_at, parked_at, the pending-queue index

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 18:00:00

"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    # Nullable, no default: instant on PostgreSQL, no table rebuild on SQLite.
    op.add_column('webhook_events', sa.Column('next_attempt_at', sa.DateTime(timezone=True)))
    op.add_column('webhook_events', sa.Column('parked_at', sa.DateTime(timezone=True)))
    # Events a failed attempt left unprocessed were retried by Stripe before; from now on the
    # applier retries them itself, except those it could never apply as they are.
    op.execute(
        "UPDATE webhook_events SET parked_at = created_at"
        " WHERE processed = false AND raw_body IS NOT NULL AND error IS NOT NULL"
    )
    op.create_index(
        'idx_webhook_events_pending',
        'webhook_events',
        ['stripe_created', 'created_at'],
        postgresql_where=sa.text('processed = false AND parked_at IS NULL'),
        sqlite_where=sa.text('processed = 0 AND parked_at IS NULL'),
    )


def downgrade():
    op.drop_index('idx_webhook_events_pending', table_name='webhook_events')
    with op.batch_alter_table('webhook_events') as batch:
        batch.drop_column('parked_at')
        batch.drop_column('next_attempt_at')
