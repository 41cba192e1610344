"""Checkout sessions: create, retrieve, list, update, expire, line items, and
completing a session when its hosted page is paid."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import billing, cards
from ..context import Ctx
from ..ids import new_id
from ..routes import route
from ..store import Store, renderer, strip_private
from ..wire import (
    LIST_PARAMS,
    AnyVal,
    Arr,
    Bool,
    Int,
    Meta,
    Obj,
    Str,
    StripeError,
    apply_metadata,
    bad_state,
    list_object,
    missing,
    paginate,
    validate,
)
from .common import list_response, retrieve_stored
from .customers import new_customer
from .payments import confirm_payment_intent, new_payment_intent, new_payment_method

SESSION_LIFETIME = 24 * 3600
MIN_LIFETIME = 30 * 60

SUBSCRIPTION_DATA = Obj(
    {
        "metadata": Meta(),
        "trial_period_days": Int(min=1, max=730),
        "trial_end": Int(),
        "description": Str(max_length=500),
        "default_tax_rates": AnyVal(),
        "application_fee_percent": AnyVal(),
        "billing_cycle_anchor": Int(),
        "billing_mode": AnyVal(),
        "invoice_settings": AnyVal(),
        "on_behalf_of": Str(),
        "proration_behavior": Str(enum=["create_prorations", "none"]),
        "transfer_data": AnyVal(),
        "trial_settings": AnyVal(),
        "pending_invoice_item_interval": AnyVal(),
    }
)

LINE_ITEM = Obj(
    {
        "price": Str(),
        "quantity": Int(min=0, max=999999),
        "price_data": AnyVal(),
        "adjustable_quantity": AnyVal(),
        "dynamic_tax_rates": AnyVal(),
        "tax_rates": AnyVal(),
        "metadata": Meta(),
    }
)

CREATE_SCHEMA = {
    "mode": Str(required=True, enum=["payment", "setup", "subscription"]),
    "customer": Str(),
    "customer_email": Str(max_length=800),
    "client_reference_id": Str(max_length=200),
    "line_items": Arr(LINE_ITEM),
    "success_url": Str(max_length=5000),
    "cancel_url": Str(max_length=5000),
    "return_url": Str(max_length=5000),
    "metadata": Meta(),
    "subscription_data": SUBSCRIPTION_DATA,
    "allow_promotion_codes": Bool(),
    "billing_address_collection": Str(enum=["auto", "required"]),
    "payment_method_types": Arr(Str()),
    "expires_at": Int(),
    "locale": Str(),
    "customer_creation": Str(enum=["always", "if_required"]),
    "ui_mode": Str(
        enum=["hosted", "embedded", "custom", "elements", "hosted_page", "embedded_page"]
    ),
    "automatic_tax": AnyVal(),
    "consent_collection": AnyVal(),
    "currency": Str(),
    "custom_fields": AnyVal(),
    "custom_text": AnyVal(),
    "customer_update": AnyVal(),
    "discounts": AnyVal(),
    "invoice_creation": AnyVal(),
    "payment_intent_data": AnyVal(),
    "payment_method_collection": Str(enum=["always", "if_required"]),
    "payment_method_configuration": Str(),
    "payment_method_data": AnyVal(),
    "payment_method_options": AnyVal(),
    "phone_number_collection": AnyVal(),
    "redirect_on_completion": Str(enum=["always", "if_required", "never"]),
    "saved_payment_method_options": AnyVal(),
    "setup_intent_data": AnyVal(),
    "shipping_address_collection": AnyVal(),
    "shipping_options": AnyVal(),
    "submit_type": Str(enum=["auto", "book", "donate", "pay", "subscribe"]),
    "tax_id_collection": AnyVal(),
    "after_expiration": AnyVal(),
    "adaptive_pricing": AnyVal(),
    "origin_context": Str(),
    "wallet_options": AnyVal(),
    "permissions": AnyVal(),
    "optional_items": AnyVal(),
    "name_collection": AnyVal(),
    "branding_settings": AnyVal(),
    "excluded_payment_method_types": AnyVal(),
}


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


@route("POST", "/v1/checkout/sessions")
def create_session(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    p = validate(params, CREATE_SCHEMA)
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
    ui_mode = p.get("ui_mode") or "hosted"
    line_items: list[dict[str, Any]] = []
    prices: list[dict[str, Any]] = []
    if mode in ("payment", "subscription"):
        if not p.get("line_items"):
            raise missing("line_items")
        for i, li in enumerate(p["line_items"]):
            if not li.get("price"):
                if li.get("price_data"):
                    raise bad_state(
                        "price_data is not supported by the sandbox; create a price first.",
                        f"line_items[{i}][price_data]",
                    )
                raise missing(f"line_items[{i}][price]")
            if li.get("quantity") is None:
                raise missing(f"line_items[{i}][quantity]")
            price = ctx.store.require("price", li["price"], f"line_items[{i}][price]")
            if not price["active"]:
                raise bad_state(
                    "The price specified is inactive. This field only accepts active prices.",
                    f"line_items[{i}][price]",
                )
            if mode == "payment" and price["type"] == "recurring":
                raise bad_state(
                    "You specified `payment` mode but passed a recurring price. "
                    "Either switch to `subscription` mode or use only one-time "
                    "prices.",
                    f"line_items[{i}][price]",
                )
            if prices and price["currency"] != prices[0]["currency"]:
                raise bad_state(
                    "All line items must use the same currency.", f"line_items[{i}][price]"
                )
            prices.append(price)
            line_items.append(_line_item(ctx, price, li["quantity"]))
        if mode == "subscription" and not any(pr["type"] == "recurring" for pr in prices):
            raise bad_state(
                "You must provide at least one recurring price in `subscription` "
                "mode when using prices.",
                "line_items",
            )
    now = ctx.now_for(customer["id"] if customer else None)
    expires_at = p.get("expires_at")
    if expires_at is not None and not (now + MIN_LIFETIME <= expires_at <= now + SESSION_LIFETIME):
        raise bad_state(
            "The `expires_at` timestamp must be between 30 minutes and 24 hours "
            "from Checkout Session creation.",
            "expires_at",
        )
    sub_data = p.get("subscription_data") or {}
    trial = bool(sub_data.get("trial_period_days") or sub_data.get("trial_end"))
    subtotal = sum(li["amount_subtotal"] for li in line_items)
    due_now = 0 if trial else subtotal
    currency = prices[0]["currency"] if prices else (p.get("currency") or None)
    session_id = new_id("cs_test")
    customer_creation = p.get("customer_creation") or ("if_required" if mode == "payment" else None)
    session: dict[str, Any] = {
        "id": session_id,
        "object": "checkout.session",
        "adaptive_pricing": {"enabled": False},
        "after_expiration": None,
        "allow_promotion_codes": p.get("allow_promotion_codes"),
        "amount_subtotal": due_now if mode != "setup" else None,
        "amount_total": due_now if mode != "setup" else None,
        "automatic_tax": {"enabled": False, "liability": None, "provider": None, "status": None},
        "billing_address_collection": p.get("billing_address_collection"),
        "cancel_url": p.get("cancel_url"),
        "client_reference_id": p.get("client_reference_id"),
        "client_secret": (
            f"{session_id}_secret_{new_id('x')[2:]}" if ui_mode != "hosted" else None
        ),
        "collected_information": None,
        "consent": None,
        "consent_collection": None,
        "created": now,
        "currency": currency,
        "currency_conversion": None,
        "custom_fields": [],
        "custom_text": {
            "after_submit": None,
            "shipping_address": None,
            "submit": None,
            "terms_of_service_acceptance": None,
        },
        "customer": customer["id"] if customer else None,
        "customer_account": None,
        "customer_creation": customer_creation,
        "customer_details": (
            {
                "address": None,
                "business_name": None,
                "email": customer["email"],
                "individual_name": None,
                "name": customer["name"],
                "phone": customer["phone"],
                "tax_exempt": customer["tax_exempt"],
                "tax_ids": [],
            }
            if customer
            else None
        ),
        "customer_email": p.get("customer_email"),
        "discounts": [],
        "expires_at": expires_at or now + SESSION_LIFETIME,
        "integration_identifier": None,
        "invoice": None,
        "invoice_creation": (
            {
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
            if mode == "payment"
            else None
        ),
        "livemode": False,
        "locale": p.get("locale"),
        "managed_payments": None,
        "metadata": apply_metadata({}, p.get("metadata")),
        "mode": mode,
        "origin_context": p.get("origin_context"),
        "payment_intent": None,
        "payment_link": None,
        "payment_method_collection": p.get("payment_method_collection")
        or ("always" if mode == "subscription" else None),
        "payment_method_configuration_details": None,
        "payment_method_options": {},
        "payment_method_types": p.get("payment_method_types") or ["card"],
        "payment_status": "no_payment_required" if mode == "setup" else "unpaid",
        "permissions": None,
        "phone_number_collection": {"enabled": False},
        "recovered_from": None,
        "saved_payment_method_options": None,
        "setup_intent": None,
        "shipping_address_collection": None,
        "shipping_cost": None,
        "shipping_options": [],
        "status": "open",
        "submit_type": p.get("submit_type"),
        "subscription": None,
        "success_url": p.get("success_url"),
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": ui_mode,
        "url": ctx.url(f"/checkout/{session_id}") if ui_mode == "hosted" else None,
        "wallet_options": None,
        "_line_items": line_items,
        "_subscription_data": sub_data,
        "_payment_intent_data": p.get("payment_intent_data") or {},
    }
    ctx.store.insert(session)
    return ctx.render(session)


route("GET", "/v1/checkout/sessions/<session_id>")(retrieve_stored("checkout.session"))


@route("POST", "/v1/checkout/sessions/<session_id>")
def update_session(ctx: Ctx, params: dict[str, Any], session_id: str) -> dict[str, Any]:
    session = ctx.store.require("checkout.session", session_id)
    p = validate(
        params,
        {
            "metadata": Meta(),
            "collected_information": AnyVal(),
            "shipping_options": AnyVal(),
            "line_items": AnyVal(),
        },
    )
    if "metadata" in p:
        session["metadata"] = apply_metadata(session["metadata"], p["metadata"])
    return ctx.render(session)


@route("GET", "/v1/checkout/sessions/<session_id>/line_items")
def list_line_items(ctx: Ctx, params: dict[str, Any], session_id: str) -> dict[str, Any]:
    session = ctx.store.require("checkout.session", session_id)
    p = validate(params, dict(LIST_PARAMS))
    rendered = session_line_items(ctx.store, session)
    page, has_more = paginate(rendered["data"], p, "line item")
    return list_object(page, rendered["url"], has_more)


@route("GET", "/v1/checkout/sessions")
def list_sessions(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    def keep(o: dict[str, Any], p: dict[str, Any]) -> bool:
        for key in ("customer", "payment_intent", "status", "subscription", "payment_link"):
            if p.get(key) and o[key] != p[key]:
                return False
        email = (p.get("customer_details") or {}).get("email")
        return not (email and (o["customer_details"] or {}).get("email") != email)

    return list_response(
        ctx,
        "checkout.session",
        params,
        {
            "customer": Str(),
            "customer_details": Obj({"email": Str(required=True)}),
            "payment_intent": Str(),
            "payment_link": Str(),
            "subscription": Str(),
            "status": Str(enum=["complete", "expired", "open"]),
            "customer_account": Str(),
        },
        "/v1/checkout/sessions",
        keep,
    )


def expire_session(ctx: Ctx, session: dict[str, Any]) -> None:
    session["status"] = "expired"
    session["url"] = None
    ctx.emit("checkout.session.expired", session)


@route("POST", "/v1/checkout/sessions/<session_id>/expire")
def expire(ctx: Ctx, params: dict[str, Any], session_id: str) -> dict[str, Any]:
    session = ctx.store.require("checkout.session", session_id)
    validate(params, {})
    if session["status"] != "open":
        raise bad_state(
            f'Only Checkout Sessions with a status in ["open"] can be expired. '
            f'This Checkout Session has a status of "{session["status"]}".'
        )
    expire_session(ctx, session)
    return ctx.render(session)


def expire_due_sessions(ctx: Ctx, clock_id: str | None) -> None:
    for session in ctx.store.all("checkout.session"):
        if session["status"] != "open":
            continue
        if ctx.customer_clock(session["customer"]) != clock_id:
            continue
        if session["expires_at"] <= ctx.time_of(session):
            expire_session(ctx, ctx.store.touch(session))


# ----------------------------------------------------------- completion


@dataclass
class PayResult:
    outcome: str  # "complete" | "error" | "authenticate"
    message: str = ""
    status: int = 200


def pay_session(
    ctx: Ctx,
    session: dict[str, Any],
    card_number: str,
    email: str | None,
    authenticated: bool = False,
) -> PayResult:
    """What happens when the hosted page is submitted with ``card_number``."""
    if session["status"] == "expired" or (
        session["status"] == "open" and session["expires_at"] <= ctx.time_of(session)
    ):
        if session["status"] == "open":
            expire_session(ctx, session)
        return PayResult(
            "error",
            "This Checkout Session has expired. Please return to the "
            "merchant's site and start again.",
            400,
        )
    if session["status"] == "complete":
        return PayResult(
            "error", "This Checkout Session is already complete; it cannot be paid again.", 400
        )
    card = cards.lookup(card_number or "")
    if card is None:
        return PayResult("error", cards.INVALID_NUMBER, 400)
    if not session["customer"] and not session["customer_email"] and not email:
        return PayResult("error", "Please enter your email address.", 400)
    charges_now = (session["amount_total"] or 0) > 0
    if card.behavior == "decline" or (card.behavior == "fail_later" and charges_now):
        return PayResult("error", cards.DECLINED, 402)
    if card.behavior == "authenticate" and not authenticated:
        session["_pending_card"] = card.number
        session["_pending_email"] = email
        return PayResult("authenticate")
    complete_session(ctx, session, card, email)
    return PayResult("complete")


def complete_session(
    ctx: Ctx, session: dict[str, Any], card: cards.TestCard, email: str | None
) -> None:
    session.pop("_pending_card", None)
    session.pop("_pending_email", None)
    mode = session["mode"]
    customer = ctx.store.get("customer", session["customer"]) if session["customer"] else None
    email = email or session["customer_email"] or (customer or {}).get("email")
    if customer is None and (
        mode in ("subscription", "setup") or session["customer_creation"] == "always"
    ):
        customer = new_customer(ctx, {"email": email})
    pm = new_payment_method(
        ctx, card, email=email, created=ctx.now_for(customer["id"] if customer else None)
    )
    if customer is not None:
        pm["customer"] = customer["id"]
        ctx.emit("payment_method.attached", pm)
    session["customer"] = customer["id"] if customer else None
    session["customer_details"] = {
        "address": {k: None for k in ("city", "country", "line1", "line2", "postal_code", "state")},
        "business_name": None,
        "email": email,
        "individual_name": None,
        "name": (customer or {}).get("name"),
        "phone": (customer or {}).get("phone"),
        "tax_exempt": (customer or {}).get("tax_exempt", "none"),
        "tax_ids": [],
    }
    if mode == "subscription":
        assert customer is not None
        sd = session["_subscription_data"]
        now = ctx.now_for(customer["id"])
        trial_end = sd.get("trial_end")
        if not trial_end and sd.get("trial_period_days"):
            trial_end = now + sd["trial_period_days"] * billing.DAY
        entries: list[tuple[dict[str, Any], int, dict[str, str]]] = []
        for li in session["_line_items"]:
            price = ctx.store.get("price", li["price"])
            if price is not None and price["type"] == "recurring":
                entries.append((price, li["quantity"], {}))
        sub = billing.create_subscription(
            ctx,
            customer,
            entries,
            trial_end=trial_end,
            metadata=sd.get("metadata") or {},
            description=sd.get("description"),
            default_payment_method=pm["id"],
        )
        session["subscription"] = sub["id"]
        session["invoice"] = sub["latest_invoice"]
        session["payment_status"] = (
            "paid" if (session["amount_total"] or 0) > 0 else "no_payment_required"
        )
    elif mode == "payment":
        pi_data = session["_payment_intent_data"]
        pi = new_payment_intent(
            ctx,
            amount=session["amount_total"] or 0,
            currency=session["currency"] or "usd",
            customer_id=customer["id"] if customer else None,
            description=pi_data.get("description") if isinstance(pi_data, dict) else None,
            metadata=pi_data.get("metadata") if isinstance(pi_data, dict) else None,
        )
        confirm_payment_intent(ctx, pi, pm)
        session["payment_intent"] = pi["id"]
        session["payment_status"] = "paid"
    else:
        session["payment_status"] = "no_payment_required"
    session["status"] = "complete"
    session["url"] = None
    ctx.emit("checkout.session.completed", session)
