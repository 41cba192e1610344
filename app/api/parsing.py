"""Turn a request body into a validated model, or a clear 400/422."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TypeVar

from flask import request
from pydantic import BaseModel, ValidationError

from app.errors import ApiError, ValidationFailed

M = TypeVar("M", bound=BaseModel)


def parse_body(model: type[M]) -> M:
    raw = request.get_data(cache=True)
    try:
        payload = json.loads(raw) if raw.strip() else {}
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError("The request body is not valid JSON.", code="invalid_json") from exc
    if not isinstance(payload, dict):
        raise ApiError("The request body must be a JSON object.", code="invalid_json")
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
