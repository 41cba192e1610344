"""Parameter specs: the types of a request's (nested) parameters, their validation with
Stripe's error codes, and metadata merging."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .errors import StripeError, invalid, missing


def _join(path: str, key: str | int) -> str:
    return f"{path}[{key}]" if path else str(key)


class Spec:
    """A parameter's type; ``clean`` validates and converts the raw form value."""

    def __init__(self, *, required: bool = False, unsettable: bool = False) -> None:
        self.required = required
        self.unsettable = unsettable

    def clean(self, value: Any, path: str) -> Any:
        raise NotImplementedError

    def _empty(self, value: Any, path: str) -> bool:
        if value == "":
            if self.unsettable:
                return True
            raise StripeError(
                400,
                f"You passed an empty string for '{path}'. We assume empty values are an attempt "
                f"to unset a parameter; however '{path}' cannot be unset. You should remove "
                f"'{path}' from your request or supply a non-empty value.",
                code="parameter_invalid_empty",
                param=path,
            )
        return False


class Str(Spec):
    def __init__(
        self,
        *,
        required: bool = False,
        unsettable: bool = False,
        enum: Iterable[str] | None = None,
        max_length: int = 5000,
    ) -> None:
        super().__init__(required=required, unsettable=unsettable)
        self.enum = list(enum) if enum is not None else None
        self.max_length = max_length

    def clean(self, value: Any, path: str) -> Any:
        if isinstance(value, bool):
            value = "true" if value else "false"
        if isinstance(value, int | float):
            value = str(value)
        if not isinstance(value, str):
            raise invalid(path, f"Invalid string: {value!r}", "parameter_invalid_string")
        if self._empty(value, path):
            return None
        if len(value) > self.max_length:
            raise invalid(
                path,
                f"Invalid string: {value[:20]}...; must be at most {self.max_length} characters",
                "parameter_invalid_string",
            )
        if self.enum is not None and value not in self.enum:
            raise invalid(
                path,
                f"Invalid {path}: must be one of {_one_of(self.enum)}",
                "parameter_invalid_enum",
            )
        return value


def _one_of(options: list[str]) -> str:
    if len(options) == 1:
        return options[0]
    return ", ".join(options[:-1]) + f", or {options[-1]}"


class Int(Spec):
    def __init__(
        self,
        *,
        required: bool = False,
        unsettable: bool = False,
        min: int | None = None,
        max: int | None = None,
        literals: Iterable[str] = (),
    ) -> None:
        super().__init__(required=required, unsettable=unsettable)
        self.min = min
        self.max = max
        self.literals = set(literals)

    def clean(self, value: Any, path: str) -> Any:
        if isinstance(value, bool):
            raise invalid(path, f"Invalid integer: {value}", "parameter_invalid_integer")
        if isinstance(value, int):
            n = value
        elif isinstance(value, str):
            if value in self.literals:
                return value
            if self._empty(value, path):
                return None
            if not re.fullmatch(r"-?\d+", value.strip()):
                raise invalid(path, f"Invalid integer: {value}", "parameter_invalid_integer")
            n = int(value.strip())
        else:
            raise invalid(path, f"Invalid integer: {value!r}", "parameter_invalid_integer")
        if self.min is not None and n < self.min:
            raise invalid(
                path,
                f"Invalid integer: {n}; must be at least {self.min}",
                "parameter_invalid_integer",
            )
        if self.max is not None and n > self.max:
            raise invalid(
                path,
                f"Invalid integer: {n}; must be at most {self.max}",
                "parameter_invalid_integer",
            )
        return n


class Bool(Spec):
    def clean(self, value: Any, path: str) -> Any:
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            if self._empty(value, path):
                return None
            if value.lower() == "true":
                return True
            if value.lower() == "false":
                return False
        raise invalid(path, f"Invalid boolean: {value}", "parameter_invalid_boolean")


class Meta(Spec):
    """``metadata``: string values; ``""`` clears it all, a ``""`` value removes a key."""

    def __init__(self) -> None:
        super().__init__(unsettable=True)

    def clean(self, value: Any, path: str) -> Any:
        if value == "":
            return ""
        if not isinstance(value, dict):
            raise invalid(path, "Invalid object", "parameter_invalid_object")
        out: dict[str, str] = {}
        for k, v in value.items():
            if not isinstance(v, str):
                raise invalid(_join(path, k), f"Invalid string: {v!r}", "parameter_invalid_string")
            if len(str(k)) > 40:
                raise invalid(_join(path, k), "Metadata keys can have up to 40 characters.")
            if len(v) > 500:
                raise invalid(_join(path, k), "Metadata values can have up to 500 characters.")
            out[str(k)] = v
        if len(out) > 50:
            raise invalid(path, "Metadata can have up to 50 keys.")
        return out


def apply_metadata(current: Mapping[str, str] | None, update: Any) -> dict[str, str]:
    """Merge a cleaned ``metadata`` update into the current metadata."""
    if update == "":
        return {}
    result = dict(current or {})
    for k, v in (update or {}).items():
        if v == "":
            result.pop(k, None)
        else:
            result[k] = v
    return result


class Obj(Spec):
    def __init__(
        self, fields: Mapping[str, Spec], *, required: bool = False, unsettable: bool = False
    ) -> None:
        super().__init__(required=required, unsettable=unsettable)
        self.fields = dict(fields)

    def clean(self, value: Any, path: str) -> Any:
        if value == "" and self.unsettable:
            return ""
        if not isinstance(value, dict):
            raise invalid(
                path, f"Invalid object: {path} must be a hash", "parameter_invalid_object"
            )
        return validate(value, self.fields, path)


class Arr(Spec):
    def __init__(
        self, item: Spec, *, required: bool = False, unsettable: bool = False, max_items: int = 100
    ) -> None:
        super().__init__(required=required, unsettable=unsettable)
        self.item = item
        self.max_items = max_items

    def clean(self, value: Any, path: str) -> Any:
        if value == "" and self.unsettable:
            return []
        items: list[Any]
        if isinstance(value, list):
            items = value
        elif isinstance(value, dict) and all(re.fullmatch(r"\d+", str(k)) for k in value):
            items = [value[k] for k in sorted(value, key=lambda k: int(k))]
        else:
            raise invalid(
                path, f"Invalid array: {path} must be an array", "parameter_invalid_array"
            )
        if len(items) > self.max_items:
            raise invalid(
                path,
                f"Invalid array: {path} can have at most {self.max_items} items",
                "parameter_invalid_array",
            )
        out = []
        for i, item in enumerate(items):
            if item is None:
                raise missing(_join(path, i))
            out.append(self.item.clean(item, _join(path, i)))
        return out


class AnyVal(Spec):
    """Accepted and kept as sent (for settings the sandbox does not model)."""

    def clean(self, value: Any, path: str) -> Any:
        return value


class Range(Spec):
    """``created``-style filters: an integer or ``{gt, gte, lt, lte}``."""

    def clean(self, value: Any, path: str) -> Any:
        if isinstance(value, dict):
            return validate(value, {k: Int() for k in ("gt", "gte", "lt", "lte")}, path)
        return {"eq": Int().clean(value, path)}


def in_range(value: int, cond: Mapping[str, int] | None) -> bool:
    if not cond:
        return True
    checks: dict[str, Callable[[int, int], bool]] = {
        "eq": lambda a, b: a == b,
        "gt": lambda a, b: a > b,
        "gte": lambda a, b: a >= b,
        "lt": lambda a, b: a < b,
        "lte": lambda a, b: a <= b,
    }
    return all(checks[k](value, v) for k, v in cond.items() if v is not None)


def validate(params: Mapping[str, Any], schema: Mapping[str, Spec], path: str = "") -> dict:
    """Check ``params`` against ``schema``; return cleaned values for the keys sent."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        spec = schema.get(key)
        full = _join(path, key)
        if spec is None:
            raise StripeError(
                400, f"Received unknown parameter: {full}", code="parameter_unknown", param=full
            )
        out[key] = spec.clean(value, full)
    for key, spec in schema.items():
        if spec.required and (key not in params or out.get(key) is None):
            raise missing(_join(path, key))
    return out


LIST_PARAMS: dict[str, Spec] = {
    "limit": Int(min=1, max=100),
    "starting_after": Str(),
    "ending_before": Str(),
}
