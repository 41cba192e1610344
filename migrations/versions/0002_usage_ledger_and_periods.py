"""usage ledger, usage periods, past_due_since; generations_limit may be NULL (unlimited)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 10:00:00

"""
import time
from contextlib import contextmanager

from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


@contextmanager
def sqlite_foreign_keys_off():
    """SQLite rebuilds `users` to change a column (copy, DROP, rename). The app's connections
    run with foreign_keys=ON, under which that DROP fires ON DELETE SET NULL on
    subscriptions.user_id and silently unlinks every subscription. SQLite's documented
    procedure (lang_altertable.html, "other kinds of table schema changes") is to turn the
    checks off around the rebuild, which only works outside a transaction, then verify."""
    bind = op.get_bind()
    if bind.dialect.name != 'sqlite':
        yield
        return
    bind.exec_driver_sql('COMMIT')
    bind.exec_driver_sql('PRAGMA foreign_keys = OFF')
    bind.exec_driver_sql('BEGIN IMMEDIATE')
    try:
        yield
        broken = bind.exec_driver_sql('PRAGMA foreign_key_check').fetchall()
        if broken:
            raise RuntimeError(f'foreign keys broken by the rebuild: {broken[:5]}')
    finally:
        bind.exec_driver_sql('COMMIT')
        bind.exec_driver_sql('PRAGMA foreign_keys = ON')
        bind.exec_driver_sql('BEGIN IMMEDIATE')


def upgrade():
    with sqlite_foreign_keys_off():
        with op.batch_alter_table('users', schema=None) as batch_op:
            batch_op.add_column(sa.Column('usage_period_start', sa.BigInteger(), nullable=True))
            batch_op.add_column(sa.Column('usage_period_end', sa.BigInteger(), nullable=True))
            batch_op.alter_column(
                'generations_limit', existing_type=sa.Integer(), nullable=True,
                existing_server_default='10',
            )

    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('past_due_since', sa.BigInteger(), nullable=True))
    # Rows already past_due start their grace now: with no start the grace never runs out.
    op.execute(
        sa.text("UPDATE subscriptions SET past_due_since = :now WHERE status = 'past_due'")
        .bindparams(now=int(time.time() * 1000))
    )

    op.create_table('usage_ledger',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.String(length=255), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('result', sa.String(length=20), nullable=False),
    sa.Column('idempotency_key', sa.String(length=255), nullable=True),
    sa.Column('reason', sa.String(length=50), nullable=True),
    sa.Column('tier', sa.String(length=50), nullable=True),
    sa.Column('generations_used', sa.Integer(), nullable=True),
    sa.Column('generations_limit', sa.Integer(), nullable=True),
    sa.Column('period_start', sa.BigInteger(), nullable=True),
    sa.Column('period_end', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('user_id', 'idempotency_key', name='uq_usage_ledger_user_key')
    )
    with op.batch_alter_table('usage_ledger', schema=None) as batch_op:
        batch_op.create_index('idx_usage_ledger_user_period', ['user_id', 'period_start'], unique=False)


def downgrade():
    with op.batch_alter_table('usage_ledger', schema=None) as batch_op:
        batch_op.drop_index('idx_usage_ledger_user_period')
    op.drop_table('usage_ledger')

    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.drop_column('past_due_since')

    # Unlimited (NULL) limits have no NOT NULL equivalent; they go back to the guide's default.
    op.execute(sa.text('UPDATE users SET generations_limit = 10 WHERE generations_limit IS NULL'))
    with sqlite_foreign_keys_off():
        with op.batch_alter_table('users', schema=None) as batch_op:
            batch_op.alter_column(
                'generations_limit', existing_type=sa.Integer(), nullable=False,
                existing_server_default='10',
            )
            batch_op.drop_column('usage_period_end')
            batch_op.drop_column('usage_period_start')
