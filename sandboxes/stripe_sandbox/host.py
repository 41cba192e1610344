"""What the request handlers (``api``, ``control``, ``hosted``) need from the sandbox that
serves them, as a protocol, so they don't import :class:`~stripe_sandbox.sandbox.Sandbox`
(which imports them)."""

from __future__ import annotations

from typing import Any, Protocol

from werkzeug.wrappers import Request

from .context import Config, Ctx
from .store import Store


class Host(Protocol):
    store: Store
    config: Config
    url: str | None

    @property
    def requests(self) -> list[dict[str, Any]]: ...

    @property
    def deliveries(self) -> list[dict[str, Any]]: ...

    def base_url_for(self, request: Request) -> str: ...

    def run_due(self, base_url: str) -> None: ...

    def publish(self, ctx: Ctx) -> None: ...

    def log_request(self, entry: dict[str, Any]) -> None: ...

    def clear_requests(self) -> None: ...

    def reset(self) -> None: ...

    def configure(self, **kwargs: Any) -> None: ...

    def wait_for_webhooks(self, timeout: float = 10.0) -> bool: ...
