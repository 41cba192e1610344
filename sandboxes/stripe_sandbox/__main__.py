"""``python -m stripe_sandbox``: serve the sandbox (``serve``, the default), or use a running
one like Stripe's CLI (``listen --forward-to URL``, ``trigger EVENT``)."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
