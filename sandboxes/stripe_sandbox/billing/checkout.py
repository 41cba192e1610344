"""Checkout sessions: building one from its parameters, line items, expiry."""

from __future__ import annotations

from typing import Any

from ..context import Ctx
from ..errors import StripeError, bad_state, missing
from ..ids import new_id
from ..params import apply_metadata
from ..store import Store, renderer, strip_private
from ..wire import list_object
from .discounts import checkout_discounts
from .tax import wants_automatic_tax

SESSION_LIFETIME = 24 * 3600


MIN_LIFETIME = 30 * 60


def _line_item(ctx: Ctx, price: dict[str, Any], quantity: int) -> dict[str, Any]:
    product = ctx.store.get("product", price["product"])
    amount = (price["unit_amount"] or 0) * quantity
    return {
        "id": new_id("li"),
        "object": "item",
        "adjustable_quantity": None,
        "amount_discount": 0,
        "amount_subtotal": amount,
        "amount_tax": 0,
        "amount_total": amount,
        "currency": price["currency"],
        "description": product["name"] if product else None,
        "metadata": {},
        "price": price["id"],
        "quantity": quantity,
    }


def render_line_item(store: Store, item: dict[str, Any]) -> dict[str, Any]:
    out = dict(item)
    price = store.get("price", item["price"])
    if price is not None:
        out["price"] = strip_private(price)
    return out


def session_line_items(store: Store, session: dict[str, Any]) -> dict[str, Any]:
    data = [render_line_item(store, i) for i in session["_line_items"]]
    return list_object(data, f"/v1/checkout/sessions/{session['id']}/line_items")


@renderer("checkout.session")
def render_session(store: Store, session: dict[str, Any]) -> dict[str, Any]:
    return strip_private(session)


def expire_session(ctx: Ctx, session: dict[str, Any]) -> None:
    session["status"] = "expired"
    session["url"] = None
    ctx.emit("checkout.session.expired", session)


def expire_due_sessions(ctx: Ctx, clock_id: str | None) -> None:
    for session in ctx.store.all("checkout.session"):
        if session["status"] != "open":
            continue
        if ctx.customer_clock(session["customer"]) != clock_id:
            continue
        if session["expires_at"] <= ctx.time_of(session):
            expire_session(ctx, ctx.store.touch(session))


def new_session(ctx: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    """A Checkout Session from cleaned parameters."""
    mode = p["mode"]
    customer = _check_session_params(ctx, p)
    line_items, prices = _line_items(ctx, mode, p.get("line_items") or [])
    now = ctx.now_for(customer["id"] if customer else None)
    expires_at = _expires_at(p.get("expires_at"), now)
    sub_data = p.get("subscription_data") or {}
    trial = bool(sub_data.get("trial_period_days") or sub_data.get("trial_end"))
    if p.get("discounts") and p.get("allow_promotion_codes"):
        raise StripeError(
            400,
            "You may only specify one of these parameters: allow_promotion_codes, discounts.",
            code="parameters_exclusive",
            param="discounts",
        )
    subtotal = sum(li["amount_subtotal"] for li in line_items)
    discounts, off = checkout_discounts(ctx, p.get("discounts") or [], subtotal)
    due_now = 0 if trial else subtotal - off
    session_id = new_id("cs_test")
    ui_mode = p.get("ui_mode") or "hosted"
    session: dict[str, Any] = {
        **_unset_session_fields(),
        **_from_params(p),
        "id": session_id,
        "object": "checkout.session",
        "amount_subtotal": (0 if trial else subtotal) if mode != "setup" else None,
        "amount_total": due_now if mode != "setup" else None,
        "client_secret": (
            f"{session_id}_secret_{new_id('x')[2:]}" if ui_mode != "hosted" else None
        ),
        "created": now,
        "currency": prices[0]["currency"] if prices else (p.get("currency") or None),
        "customer": customer["id"] if customer else None,
        "customer_details": _details_of(customer),
        "expires_at": expires_at or now + SESSION_LIFETIME,
        "invoice_creation": _invoice_creation() if mode == "payment" else None,
        "payment_status": "no_payment_required" if mode == "setup" else "unpaid",
        "ui_mode": ui_mode,
        "url": ctx.url(f"/checkout/{session_id}") if ui_mode == "hosted" else None,
        "discounts": discounts,
        "total_details": {
            "amount_discount": 0 if trial else off,
            "amount_shipping": 0,
            "amount_tax": 0,
        },
        "_line_items": line_items,
        "_subscription_data": sub_data,
        "_payment_intent_data": p.get("payment_intent_data") or {},
        "_customer_update": p.get("customer_update") or {},
    }
    if wants_automatic_tax(p.get("automatic_tax")):
        session["automatic_tax"] = {**session["automatic_tax"], "enabled": True}
    if wants_automatic_tax(p.get("tax_id_collection")):  # the same `[enabled]=true` shape
        session["tax_id_collection"] = {"enabled": True, "required": "never"}
    ctx.store.insert(session)
    return session


def _check_session_params(ctx: Ctx, p: dict[str, Any]) -> dict[str, Any] | None:
    """The combinations Stripe refuses; returns the session's customer, if named."""
    mode = p["mode"]
    if p.get("customer") and p.get("customer_email"):
        raise StripeError(
            400,
            "You may only specify one of these parameters: customer, customer_email.",
            code="parameters_exclusive",
            param="customer_email",
        )
    customer = None
    if p.get("customer"):
        customer = ctx.store.require("customer", p["customer"], "customer")
    if p.get("customer_creation") and mode == "subscription":
        raise bad_state(
            "`customer_creation` can only be used in `payment` and `setup` mode.",
            "customer_creation",
        )
    if p.get("subscription_data") and mode != "subscription":
        raise bad_state(
            "You can not pass `subscription_data` in `payment` mode.", "subscription_data"
        )
    return customer


def _line_items(
    ctx: Ctx, mode: str, requested: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(line items, their prices)``, checked against the mode and each other."""
    if mode not in ("payment", "subscription"):
        return [], []
    if not requested:
        raise missing("line_items")
    line_items: list[dict[str, Any]] = []
    prices: list[dict[str, Any]] = []
    for i, li in enumerate(requested):
        price = _line_price(ctx, mode, li, f"line_items[{i}]")
        if prices and price["currency"] != prices[0]["currency"]:
            raise bad_state("All line items must use the same currency.", f"line_items[{i}][price]")
        prices.append(price)
        line_items.append(_line_item(ctx, price, li["quantity"]))
    if mode == "subscription" and not any(pr["type"] == "recurring" for pr in prices):
        raise bad_state(
            "You must provide at least one recurring price in `subscription` "
            "mode when using prices.",
            "line_items",
        )
    return line_items, prices


def _line_price(ctx: Ctx, mode: str, li: dict[str, Any], param: str) -> dict[str, Any]:
    if not li.get("price"):
        if li.get("price_data"):
            raise bad_state(
                "price_data is not supported by the sandbox; create a price first.",
                f"{param}[price_data]",
            )
        raise missing(f"{param}[price]")
    if li.get("quantity") is None:
        raise missing(f"{param}[quantity]")
    price = ctx.store.require("price", li["price"], f"{param}[price]")
    if not price["active"]:
        raise bad_state(
            "The price specified is inactive. This field only accepts active prices.",
            f"{param}[price]",
        )
    if mode == "payment" and price["type"] == "recurring":
        raise bad_state(
            "You specified `payment` mode but passed a recurring price. "
            "Either switch to `subscription` mode or use only one-time "
            "prices.",
            f"{param}[price]",
        )
    return price


def _expires_at(expires_at: int | None, now: int) -> int | None:
    if expires_at is not None and not (now + MIN_LIFETIME <= expires_at <= now + SESSION_LIFETIME):
        raise bad_state(
            "The `expires_at` timestamp must be between 30 minutes and 24 hours "
            "from Checkout Session creation.",
            "expires_at",
        )
    return expires_at


def _from_params(p: dict[str, Any]) -> dict[str, Any]:
    """The fields a session copies from its parameters."""
    mode = p["mode"]
    copied = (
        "allow_promotion_codes billing_address_collection cancel_url client_reference_id "
        "customer_email locale origin_context submit_type success_url"
    )
    return {
        **{key: p.get(key) for key in copied.split()},
        "customer_creation": p.get("customer_creation")
        or ("if_required" if mode == "payment" else None),
        "metadata": apply_metadata({}, p.get("metadata")),
        "mode": mode,
        "payment_method_collection": p.get("payment_method_collection")
        or ("always" if mode == "subscription" else None),
        "payment_method_types": p.get("payment_method_types") or ["card"],
    }


def _unset_session_fields() -> dict[str, Any]:
    keys = (
        "after_expiration collected_information consent consent_collection "
        "currency_conversion customer_account integration_identifier invoice "
        "managed_payments payment_intent payment_link payment_method_configuration_details "
        "permissions recovered_from saved_payment_method_options setup_intent "
        "shipping_address_collection shipping_cost subscription wallet_options"
    )
    return {
        **dict.fromkeys(keys.split()),
        "adaptive_pricing": {"enabled": False},
        "automatic_tax": {"enabled": False, "liability": None, "provider": None, "status": None},
        "custom_fields": [],
        "custom_text": {
            "after_submit": None,
            "shipping_address": None,
            "submit": None,
            "terms_of_service_acceptance": None,
        },
        "discounts": [],
        "livemode": False,
        "payment_method_options": {},
        "phone_number_collection": {"enabled": False},
        "tax_id_collection": {"enabled": False, "required": "never"},
        "shipping_options": [],
        "status": "open",
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
    }


def _details_of(customer: dict[str, Any] | None) -> dict[str, Any] | None:
    if customer is None:
        return None
    return {
        "address": None,
        "business_name": None,
        "email": customer["email"],
        "individual_name": None,
        "name": customer["name"],
        "phone": customer["phone"],
        "tax_exempt": customer["tax_exempt"],
        "tax_ids": [],
    }


def _invoice_creation() -> dict[str, Any]:
    return {
        "enabled": False,
        "invoice_data": {
            "account_tax_ids": None,
            "custom_fields": None,
            "description": None,
            "footer": None,
            "issuer": None,
            "metadata": {},
            "rendering_options": None,
        },
    }
