"""The v1 encoding: bracketed form parsing, list objects with cursor pagination, and
``expand``."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .errors import StripeError, not_found
from .params import Arr, Str

# ------------------------------------------------------- form parsing

_KEY_RE = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_SEG_RE = re.compile(r"\[([^\[\]]*)\]")


def parse_form(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Turn ``a[b][0][c]=v`` / ``expand[]=x`` pairs into nested dicts and lists.

    Indexed segments (``[0]``) become dict keys; :class:`Arr` turns such
    dicts into lists during validation. ``[]`` appends to a list.
    """
    root: dict[str, Any] = {}
    for raw_key, value in pairs:
        m = _KEY_RE.match(raw_key)
        if not m:
            root[raw_key] = value
            continue
        segments = [m.group(1), *_SEG_RE.findall(m.group(2))]
        _assign(root, segments, value)
    return root


def _assign(container: Any, segments: list[str], value: str) -> None:
    key = segments[0]
    rest = segments[1:]
    if isinstance(container, list):
        # container is a list reached through "[]": key is "" here
        if not rest:
            container.append(value)
            return
        sub = rest[0]
        if container and isinstance(container[-1], dict) and sub not in container[-1]:
            target = container[-1]
        else:
            target = {}
            container.append(target)
        _assign(target, rest, value)
        return
    if not rest:
        container[key] = value
        return
    nxt = rest[0]
    existing = container.get(key)
    if nxt == "":
        if not isinstance(existing, list):
            existing = [] if not isinstance(existing, str) else [existing]
            container[key] = existing
        _assign(existing, rest, value)
        return
    if not isinstance(existing, dict):
        existing = {}
        container[key] = existing
    _assign(existing, rest, value)


# ---------------------------------------------------------------- lists


def list_object(data: list[dict[str, Any]], url: str, has_more: bool = False) -> dict[str, Any]:
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


def paginate(
    items: list[dict[str, Any]], params: Mapping[str, Any], kind: str
) -> tuple[list[dict[str, Any]], bool]:
    """Slice newest-first ``items`` by ``limit``/``starting_after``/``ending_before``."""
    limit = params.get("limit") or 10
    after = params.get("starting_after")
    before = params.get("ending_before")
    if after and before:
        raise StripeError(
            400,
            "You may only specify one of these parameters: ending_before, starting_after.",
            code="parameters_exclusive",
            param="ending_before",
        )
    ids = [o["id"] for o in items]
    if after:
        if after not in ids:
            raise not_found(kind, after, "starting_after")
        i = ids.index(after) + 1
        page = items[i : i + limit]
        return page, i + limit < len(items)
    if before:
        if before not in ids:
            raise not_found(kind, before, "ending_before")
        i = ids.index(before)
        start = max(0, i - limit)
        return items[start:i], start > 0
    return items[:limit], len(items) > limit


# --------------------------------------------------------------- expand


Include = Callable[[dict[str, Any], str], Any]


def _no_include(obj: dict[str, Any], field: str) -> Any:
    return None


def apply_expand(
    obj: Any, paths: Iterable[str], resolve: Callable[[str], Any], include: Include = _no_include
) -> Any:
    """Replace ids at each dotted path with the object they name (in place).

    ``include(obj, field)`` supplies "includable" fields that are absent unless
    expanded (e.g. an invoice's ``payments``).
    """
    for path in paths:
        _expand(obj, path.split("."), path, resolve, include)
    return obj


def _cannot(path: str) -> StripeError:
    return StripeError(400, f"This property cannot be expanded ({path}).", param="expand")


def _expand(
    value: Any, segments: list[str], full: str, resolve: Callable[[str], Any], include: Include
) -> None:
    if isinstance(value, list):
        for v in value:
            _expand(v, segments, full, resolve, include)
        return
    if not isinstance(value, dict):
        raise _cannot(full)
    head, rest = segments[0], segments[1:]
    if head not in value:
        extra = include(value, head)
        if extra is None:
            raise _cannot(full)
        value[head] = extra
    child = value[head]
    if child is None:
        return
    if isinstance(child, str):
        resolved = resolve(child)
        if resolved is None:
            raise _cannot(full)
        value[head] = child = resolved
    if rest:
        _expand(child, rest, full, resolve, include)


def expand_paths(raw: Any) -> list[str]:
    """The ``expand`` parameter as a list of dotted paths."""
    if raw is None:
        return []
    return [p for p in Arr(Str(max_length=500)).clean(raw, "expand") if p]
