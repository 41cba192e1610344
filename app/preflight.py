"""`python -m app.preflight`: run by bin/start before gunicorn; refuses development settings.

Exit 0 when the environment is fit for production, else 2 with one line per problem. The
image defaults to APP_ENV=production, but an `--env-file` copied from .env.example brings
development values (APP_ENV=development, the dev JWT secret, no Stripe key = `make run`'s sandbox)
that must never serve real traffic.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from app.config import ConfigError, load_config


def production_problems(env: Mapping[str, str]) -> list[str]:
    """Every reason this environment must not serve production; the rules themselves are the
    configuration's (app/config.py `production_problems`), so the two can never disagree."""
    problems: list[str] = []
    if env.get("APP_ENV", "development") != "production":
        problems.append(
            f"APP_ENV={env.get('APP_ENV', '')!r}: this start script serves production only "
            "(use `make run` for development)"
        )
    try:
        load_config({"APP_ENV": "production"})
    except ConfigError as exc:
        problems.extend(exc.problems)
    return problems


def main() -> int:
    problems = production_problems(os.environ)
    for problem in problems:
        print(f"refusing to start: {problem}", file=sys.stderr)
    return 2 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
