"""The pending-events index in the applier's whole claim order (stripe_created, created_at, id)

Revision ID: 0010_pending_index_order
Revises: 0009_checkout_claims
Create Date: 2026-12-05 21:10:00

The claim walks this index in order and stops after a batch (app/billing/webhooks/store.py
`claim_ready`). With `id` in the index, the walk needs no sort: a plain index scan, which marks
the entries of applied events dead as it passes them. A bitmap scan never does, so without a
vacuum every claim visited every event applied since the last one (20 ms a claim after 80,000).
"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '0010_pending_index_order'
down_revision = '0009_checkout_claims'
branch_labels = None
depends_on = None


def _pending_index(columns):
    op.drop_index('idx_webhook_events_pending', table_name='webhook_events')
    op.create_index(
        'idx_webhook_events_pending',
        'webhook_events',
        columns,
        postgresql_where=sa.text('processed = false AND parked_at IS NULL'),
        sqlite_where=sa.text('processed = 0 AND parked_at IS NULL'),
    )


def upgrade():
    _pending_index(['stripe_created', 'created_at', 'id'])


def downgrade():
    _pending_index(['stripe_created', 'created_at'])
