"""`python -m app.preflight`: run by bin/start before gunicorn; refuses development settings.

Exit 0 when the environment is fit for production, else 2 with one line per problem. The
image defaults to APP_ENV=production, but an `--env-file` copied from .env.example brings
development values (APP_ENV=development, the dev JWT secret, no Stripe key = embedded sandbox)
that must never serve real traffic.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

from app.config import DEV_JWT_SECRET, ConfigError, load_config


def production_problems(env: Mapping[str, str]) -> list[str]:
    problems: list[str] = []
    if env.get("APP_ENV", "development") != "production":
        problems.append(
            f"APP_ENV={env.get('APP_ENV', '')!r}: this start script serves production only "
            "(use `make run` for development)"
        )
    try:
        config: dict[str, Any] = load_config({"APP_ENV": "production"})
    except ConfigError as exc:
        return [*problems, str(exc)]
    secret = config.get("AUTH_JWT_SECRET") or ""
    if secret == DEV_JWT_SECRET or (secret and len(secret) < 32):
        problems.append("AUTH_JWT_SECRET is the development secret or shorter than 32 characters")
    if config["DATABASE_URL"].startswith("sqlite"):
        problems.append("DATABASE_URL is SQLite: production needs PostgreSQL")
    if env.get("FLASK_DEBUG", "").lower() in ("1", "true", "yes"):
        problems.append("FLASK_DEBUG is on")
    return problems


def main() -> int:
    problems = production_problems(os.environ)
    for problem in problems:
        print(f"refusing to start: {problem}", file=sys.stderr)
    return 2 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
