"""Helpers shared by the resource handlers."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..context import Ctx
from ..params import LIST_PARAMS, Range, Spec, in_range, validate
from ..routes import Handler
from ..store import KIND_NAMES
from ..wire import list_object, paginate


def list_response(
    ctx: Ctx,
    kind: str,
    params: dict[str, Any],
    filters: dict[str, Spec],
    url: str,
    keep: Callable[[dict[str, Any], dict[str, Any]], bool] | None = None,
    items: Iterable[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Validate list params, filter (``created`` handled here), paginate, render."""
    schema: dict[str, Spec] = {**LIST_PARAMS, "created": Range(), **filters}
    p = validate(params, schema)
    objs = list(items) if items is not None else ctx.store.all(kind)
    objs = [o for o in objs if in_range(int(o.get("created") or 0), p.get("created"))]
    if keep is not None:
        objs = [o for o in objs if keep(o, p)]
    page, has_more = paginate(objs, p, kind_name(kind))
    return list_object([ctx.render(o) for o in page], url, has_more)


def matching_params(*fields: str) -> Callable[[dict[str, Any], dict[str, Any]], bool]:
    """A list filter: keep the objects whose `field` equals each of these params that was given
    (Stripe's `customer=`, `status=` ... on list calls)."""

    def keep(obj: dict[str, Any], p: dict[str, Any]) -> bool:
        return all(not p.get(field) or obj[field] == p[field] for field in fields)

    return keep


def kind_name(kind: str) -> str:
    return KIND_NAMES.get(kind, kind)


def id_of(value: Any) -> Any:
    """An expanded object or an id -> the id."""
    if isinstance(value, dict):
        return value.get("id")
    return value


def retrieve_stored(kind: str) -> Handler:
    """The handler of `GET /v1/<resource>/<id>`: no parameters but `expand`, the stored object."""

    def retrieve(ctx: Ctx, params: dict[str, Any], **path: str) -> dict[str, Any]:
        validate(params, {})
        (object_id,) = path.values()
        return ctx.render(ctx.store.require(kind, object_id))

    return retrieve
