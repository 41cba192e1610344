"""Turn a request body into a validated model, or a clear 400/422."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TypeVar

from flask import request
from pydantic import BaseModel, ValidationError

from app.errors import ApiError, ValidationFailed

M = TypeVar("M", bound=BaseModel)

# Our bodies are two levels deep (metadata); anything much deeper is not for us.
MAX_JSON_DEPTH = 16


def json_depth(value: object) -> int:
    """Nesting depth, without recursion (a hostile body must not exhaust the stack)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def parse_body(model: type[M]) -> M:
    raw = request.get_data(cache=True)
    try:
        payload = json.loads(raw) if raw.strip() else {}
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError("The request body is not valid JSON.", code="invalid_json") from exc
    except RecursionError as exc:
        raise ApiError("The request body is nested too deeply.", code="invalid_json") from exc
    if not isinstance(payload, dict):
        raise ApiError("The request body must be a JSON object.", code="invalid_json")
    if json_depth(payload) > MAX_JSON_DEPTH:
        raise ApiError("The request body is nested too deeply.", code="invalid_json")
    return _validated(model, payload)


def parse_query(model: type[M]) -> M:
    """The query string as a model: `?refresh=maybe` is a 422 naming the parameter, not a
    silent false."""
    return _validated(model, request.args.to_dict())


def _validated(model: type[M], payload: Mapping[str, object]) -> M:
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        problems = [
            {
                "field": ".".join(str(part) for part in error["loc"]) or "body",
                "message": error["msg"],
            }
            for error in exc.errors(include_input=False, include_url=False)
        ]
        raise ValidationFailed(
            "Some fields are missing or invalid.", details={"fields": problems}
        ) from exc
