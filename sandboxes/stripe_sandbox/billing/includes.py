"""Includable fields: absent from an object unless ``expand``-ed (an invoice's ``payments``,
a checkout session's ``line_items``)."""

from __future__ import annotations

from typing import Any

from ..store import Store
from .checkout import session_line_items
from .items import invoice_payments


def includable(store: Store, obj: dict[str, Any], field: str) -> Any:
    """The value of ``field`` for the stored object behind ``obj``, or None."""
    stored = store.find(obj.get("id", "")) if isinstance(obj.get("id"), str) else None
    if stored is None:
        return None
    if stored["object"] == "invoice" and field == "payments":
        return invoice_payments(store, stored)
    if stored["object"] == "checkout.session" and field == "line_items":
        return session_line_items(store, stored)
    return None
