"""``python -m stripe_sandbox [serve] --port 12111``: serve the sandbox standalone."""

from __future__ import annotations

import argparse

from ..sandbox import Sandbox

HELP = "serve the sandbox (the default command)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument("--state", default=None, help="JSON file to load and persist state")
    parser.add_argument(
        "--retry-time-scale",
        type=float,
        default=1.0,
        help="multiply webhook retry delays (e.g. 0.001 in tests)",
    )
    parser.add_argument(
        "--public-url",
        default=None,
        help="base URL of hosted pages for browsers, when it differs from the API clients' one",
    )


def run(args: argparse.Namespace) -> int:
    sandbox = Sandbox(state_path=args.state)
    sandbox.public_url = args.public_url
    sandbox.defaults = {"retry_time_scale": args.retry_time_scale}
    sandbox.configure(**sandbox.defaults)
    url = sandbox.start(host=args.host, port=args.port)
    print(f"Stripe sandbox listening on {url}  (API: {url}/v1)", flush=True)
    try:
        assert sandbox._thread is not None
        while sandbox._thread.is_alive():
            sandbox._thread.join(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
    return 0
