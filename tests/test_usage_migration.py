"""Migration 0002 on a database holding data: rebuilding `users` on SQLite must not unlink
subscriptions (the app's connections enforce foreign keys, under which the rebuild's DROP TABLE
would fire ON DELETE SET NULL), and rows already past_due get a grace start."""

from __future__ import annotations

from pathlib import Path

from flask_migrate import downgrade, upgrade
from sqlalchemy import text

from app import create_app
from app.extensions import db


def test_0002_keeps_every_link_and_backfills_past_due(tmp_path: Path) -> None:
    app = create_app(
        {
            "APP_ENV": "testing",
            "DATABASE_URL": f"sqlite:///{tmp_path}/migrate.db",
            "STRIPE_SECRET_KEY": "sk_test_unused",
            "LOG_LEVEL": "WARNING",
        }
    )
    with app.app_context():
        upgrade(revision="0001")
        db.session.execute(
            text("INSERT INTO users (id, updated_at) VALUES ('u1', CURRENT_TIMESTAMP)")
        )
        db.session.execute(
            text(
                "INSERT INTO subscriptions (id, user_id, status, updated_at) VALUES "
                "('s1', 'u1', 'past_due', CURRENT_TIMESTAMP), "
                "('s2', 'u1', 'active', CURRENT_TIMESTAMP)"
            )
        )
        db.session.commit()

        upgrade()
        rows = db.session.execute(
            text("SELECT id, user_id, past_due_since FROM subscriptions ORDER BY id")
        ).all()
        assert [(r.id, r.user_id) for r in rows] == [("s1", "u1"), ("s2", "u1")]
        assert rows[0].past_due_since is not None and rows[1].past_due_since is None
        db.session.execute(text("UPDATE users SET generations_limit = NULL"))
        db.session.commit()
        # The migration turned the checks off for its rebuild only.
        assert db.session.execute(text("PRAGMA foreign_keys")).scalar() == 1
        db.session.commit()  # SQLite: release the write lock before the next migration runs

        downgrade(revision="0001")
        assert db.session.execute(text("SELECT user_id FROM subscriptions")).scalars().all() == [
            "u1",
            "u1",
        ]
        # Unlimited has no NOT NULL equivalent: it goes back to the free plan's default (10).
        assert db.session.execute(text("SELECT generations_limit FROM users")).scalar() == 10
        db.session.remove()
        db.engine.dispose()
