"""The id of the request being served: taken from `X-Request-ID` when it looks sane, else made
here; echoed on the response, put on every log line, Sentry event and audit entry."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar, Token
from typing import Protocol

REQUEST_ID_HEADER = "X-Request-ID"
# A proxy's id (uuid, hex, base64-ish, dotted) is kept; anything else (too long, spaces,
# control characters that could forge log lines) is replaced by our own.
_ACCEPTED = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")

_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    """The request id of the request this code runs for, or None outside a request."""
    return _request_id.get()


def new_request_id() -> str:
    return uuid.uuid4().hex


class _Headers(Protocol):
    def get(self, key: str) -> str | None: ...


def incoming_request_id(headers: _Headers) -> str:
    candidate = (headers.get(REQUEST_ID_HEADER) or "").strip()
    return candidate if _ACCEPTED.match(candidate) else new_request_id()


def bind_request_id(request_id: str) -> Token[str | None]:
    return _request_id.set(request_id)


def unbind_request_id(token: Token[str | None]) -> None:
    try:
        _request_id.reset(token)
    except ValueError:  # reset from another context (should not happen); just clear it
        _request_id.set(None)
