"""``python -m github_sandbox --port 12120``: serve the GitHub stand-in until interrupted.

Prints one line, ``GitHub sandbox listening on http://HOST:PORT``, which launchers read
(``--port 0`` picks a free port)."""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType

from .server import GitHubSandbox
from .store import DEV_CLIENT_ID, DEV_CLIENT_SECRET, OAuthApp


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m github_sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12120)
    parser.add_argument("--client-id", default=DEV_CLIENT_ID)
    parser.add_argument("--client-secret", default=DEV_CLIENT_SECRET)
    parser.add_argument(
        "--callback-url",
        default=None,
        help="the registered callback URL (default: any loopback port, /auth/github/callback)",
    )
    args = parser.parse_args(argv)
    sandbox = GitHubSandbox()
    if args.client_id != DEV_CLIENT_ID or args.callback_url:
        default = sandbox.store.apps[DEV_CLIENT_ID]
        app = OAuthApp(
            args.client_id, args.client_secret, args.callback_url or default.callback_url
        )
        sandbox.store.apps = {app.client_id: app}
    url = sandbox.start(host=args.host, port=args.port)
    print(f"GitHub sandbox listening on {url}", flush=True)

    def stop(_signum: int, _frame: FrameType | None) -> None:
        sandbox.stop()

    signal.signal(signal.SIGTERM, stop)
    try:
        sandbox.wait()
    except KeyboardInterrupt:
        sandbox.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
