"""The id of the current request, shared by logs and the audit log."""

from __future__ import annotations

import re
import uuid

from flask import g, has_request_context, request

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def current_request_id() -> str | None:
    """`g.request_id` if middleware set one, else the caller's `X-Request-ID` (when it is a
    short safe token), else a new one; remembered in `g.request_id`. None outside a request."""
    if not has_request_context():
        return None
    existing = getattr(g, "request_id", None)
    if existing:
        return str(existing)
    given = request.headers.get("X-Request-ID", "")
    g.request_id = given if _SAFE_ID.match(given) else uuid.uuid4().hex
    return str(g.request_id)
