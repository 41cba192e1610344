"""The /v1 route table: resource modules register handlers with ``@route``."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Handler = Callable[..., dict[str, Any]]

_ROUTES: list[tuple[str, re.Pattern[str], Handler]] = []


def route(method: str, pattern: str) -> Callable[[Handler], Handler]:
    """Register ``handler(ctx, params, **path_args)`` for ``METHOD /v1/...``."""
    regex = re.compile("^" + re.sub(r"<(\w+)>", r"(?P<\1>[^/]+)", pattern) + "$")

    def register(fn: Handler) -> Handler:
        _ROUTES.append((method.upper(), regex, fn))
        return fn

    return register


def match(method: str, path: str) -> tuple[Handler | None, dict[str, str], bool]:
    """``(handler, path_args, path_known)`` for a request."""
    known = False
    for m, regex, fn in _ROUTES:
        found = regex.match(path)
        if found:
            known = True
            if m == method.upper():
                return fn, found.groupdict(), True
    return None, {}, known
