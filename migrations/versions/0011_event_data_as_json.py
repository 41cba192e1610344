"""Stored events' `data` as PostgreSQL's json (the text as received) instead of jsonb

Revision ID: 0011_event_data_as_json
Revises: 0010_pending_index_order
Create Date: 2026-12-06 07:20:00

Every delivery's body is written once and read once by the applier; nothing queries inside it.
jsonb parsed each ~4 KB event into its binary form on the way in and printed it back to text on
the way out: ~0.08 ms of PostgreSQL's CPU per event more than json's syntax check
(docs/performance.md, ninth pass). json also keeps the body exactly as Stripe sent it (key order
and all). SQLite's JSON column is text already: nothing changes there.
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = '0011_event_data_as_json'
down_revision = '0010_pending_index_order'
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.alter_column(
            'webhook_events', 'data',
            type_=postgresql.JSON(astext_type=sa.Text()),
            existing_type=postgresql.JSONB(astext_type=sa.Text()),
            postgresql_using='data::json',
        )


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.alter_column(
            'webhook_events', 'data',
            type_=postgresql.JSONB(astext_type=sa.Text()),
            existing_type=postgresql.JSON(astext_type=sa.Text()),
            postgresql_using='data::jsonb',
        )
