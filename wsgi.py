"""Entry point for gunicorn (`gunicorn wsgi:app`) and `flask --app wsgi`.

A configuration that is unsafe or incomplete stops here with one short message listing every
problem and exit status 3 (gunicorn's "worker failed to boot": the master stops too, instead of
restarting workers forever)."""

import sys

from app import create_app
from app.config import ConfigError

CONFIG_EXIT_STATUS = 3

try:
    app = create_app()
except ConfigError as exc:
    print(f"billing-api: {exc}", file=sys.stderr)
    sys.exit(CONFIG_EXIT_STATUS)
