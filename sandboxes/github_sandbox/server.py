"""The :class:`GitHubSandbox`: the WSGI app that routes to the OAuth pages, the REST endpoints
and the control endpoints, and the server thread it runs on."""

from __future__ import annotations

import ipaddress
import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from . import oauth
from .api import handle_rest, rest_error
from .control import handle_control
from .store import Store

StartResponse = Callable[..., Any]
NO_FAULTS: dict[str, Any] = {"api_status": None, "token_status": None, "delay": 0.0}
# Logged requests show which parameters were sent; secrets are masked.
MASKED = frozenset({"client_secret"})


class _QuietHandler(WSGIRequestHandler):
    def log(self, type: str, message: str, *args: Any) -> None:
        pass


def _is_loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


class GitHubSandbox:
    """A local stand-in for GitHub's OAuth web flow and user API (see README.md)."""

    def __init__(self) -> None:
        self.store = Store()
        self.faults: dict[str, Any] = dict(NO_FAULTS)
        self.url: str | None = None
        self._log: list[dict[str, Any]] = []
        self._log_lock = threading.Lock()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    # -- WSGI ----------------------------------------------------------------------------------
    def wsgi_app(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        return self.handle(request)(environ, start_response)

    def handle(self, request: Request) -> Response:
        path = request.path
        if path.startswith("/_sandbox"):
            if not _is_loopback(request.remote_addr):
                return rest_error("control endpoints are loopback-only", 403)
            return handle_control(self, request)
        self._record(request)
        if path == "/login/oauth/authorize" and request.method in ("GET", "POST"):
            return oauth.authorize(self.store, request)
        if path == "/login/oauth/access_token" and request.method == "POST":
            return self._faulty("token_status") or oauth.access_token(self.store, request)
        if path.startswith("/user"):
            return self._faulty("api_status") or handle_rest(self.store, request, self.base_url)
        if path == "/":
            return Response(
                json.dumps({"object": "github_sandbox", "authorize": "/login/oauth/authorize"}),
                content_type="application/json",
            )
        return rest_error("Not Found", 404)

    @property
    def base_url(self) -> str:
        return self.url or ""

    def _faulty(self, switch: str) -> Response | None:
        if self.faults.get("delay"):
            time.sleep(float(self.faults["delay"]))
        status = self.faults.get(switch)
        return rest_error("Server Error", int(status)) if status else None

    def _record(self, request: Request) -> None:
        params: dict[str, Any] = {**request.args.to_dict(), **request.form.to_dict()}
        body = request.get_json(silent=True) if request.is_json else None
        if isinstance(body, dict):
            params.update(body)
        entry = {
            "method": request.method,
            "path": request.path,
            "params": {k: ("***" if k in MASKED else v) for k, v in params.items()},
            "authorization": bool(request.headers.get("Authorization")),
        }
        with self._log_lock:
            self._log.append(entry)

    @property
    def requests(self) -> list[dict[str, Any]]:
        with self._log_lock:
            return [dict(entry) for entry in self._log]

    def reset(self) -> None:
        self.store.reset()
        self.faults = dict(NO_FAULTS)
        with self._log_lock:
            self._log.clear()

    # -- serving -------------------------------------------------------------------------------
    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on a daemon thread; returns the base URL (also ``self.url``)."""
        if self._server is not None and self.url is not None:
            return self.url
        self._server = make_server(
            host, port, self.wsgi_app, threaded=True, request_handler=_QuietHandler
        )
        self._server.daemon_threads = True  # type: ignore[attr-defined]
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
        self.url = f"http://{shown}:{self._server.socket.getsockname()[1]}"
        # stop() waits for serve_forever's next poll: 0.05 s rather than 0.5 s per stop (tests
        # start and stop sandboxes by the dozen).
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="github-sandbox",
            daemon=True,
        )
        self._thread.start()
        return self.url

    def wait(self) -> None:
        """Block until the server stops (the command line's main loop)."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(1.0)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
