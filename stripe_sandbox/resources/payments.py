"""Payment methods, payment intents and charges (as created by checkout and invoices)."""

from __future__ import annotations

import hashlib
from typing import Any

from .. import cards
from ..context import Ctx
from ..ids import new_id, random_token
from ..routes import route
from ..timeutil import wall_now
from ..wire import AnyVal, Int, Meta, Obj, Str, StripeError, bad_state, not_found, validate
from .common import list_response, retrieve_stored

# ------------------------------------------------------- payment methods


def new_payment_method(
    ctx: Ctx,
    card: cards.TestCard,
    *,
    email: str | None = None,
    name: str | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    now = created if created is not None else wall_now()
    pm = {
        "id": new_id("pm"),
        "object": "payment_method",
        "allow_redisplay": "unspecified",
        "billing_details": {
            "address": {
                k: None for k in ("city", "country", "line1", "line2", "postal_code", "state")
            },
            "email": email,
            "name": name,
            "phone": None,
            "tax_id": None,
        },
        "card": {
            "brand": card.brand,
            "checks": {
                "address_line1_check": None,
                "address_postal_code_check": None,
                "cvc_check": "pass",
            },
            "country": "US",
            "display_brand": card.brand,
            "exp_month": 12,
            "exp_year": 2034,
            "fingerprint": hashlib.sha256(card.number.encode()).hexdigest()[:16],
            "funding": "credit",
            "generated_from": None,
            "last4": card.last4,
            "networks": {"available": [card.brand], "preferred": None},
            "regulated_status": "unregulated",
            "three_d_secure_usage": {"supported": True},
            "wallet": None,
        },
        "created": now,
        "customer": None,
        "customer_account": None,
        "livemode": False,
        "metadata": {},
        "type": "card",
        "_behavior": card.behavior,
    }
    ctx.store.insert(pm)
    return pm


def attach_payment_method(
    ctx: Ctx, pm_id: str, customer: dict[str, Any], param: str = "payment_method"
) -> dict[str, Any]:
    if pm_id in cards.MAGIC_PAYMENT_METHODS:
        card = cards.lookup(cards.MAGIC_PAYMENT_METHODS[pm_id])
        assert card is not None
        pm = new_payment_method(ctx, card)
    else:
        pm = ctx.store.require("payment_method", pm_id, param)
    if pm.get("customer") and pm["customer"] != customer["id"]:
        raise bad_state(
            "The payment method you provided has already been attached to a customer.", param
        )
    if pm.get("customer") == customer["id"]:
        return pm
    if pm["_behavior"] == "decline":
        raise StripeError(
            402,
            cards.DECLINED,
            type="card_error",
            code="card_declined",
            decline_code="generic_decline",
            param="",
        )
    pm["customer"] = customer["id"]
    ctx.emit("payment_method.attached", pm)
    return pm


def payment_method_for(
    ctx: Ctx, customer_id: str, preferred: str | None = None
) -> dict[str, Any] | None:
    """The payment method a charge for this customer would use."""
    if preferred:
        pm = ctx.store.get("payment_method", preferred)
        if pm is not None:
            return pm
    customer = ctx.store.get("customer", customer_id)
    if customer is None:
        return None
    default = customer["invoice_settings"].get("default_payment_method")
    if default:
        return ctx.store.get("payment_method", default)
    return None


CARD_PARAMS = Obj(
    {"number": Str(), "exp_month": Int(), "exp_year": Int(), "cvc": Str(), "token": Str()}
)


@route("POST", "/v1/payment_methods")
def create_payment_method(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    p = validate(
        params,
        {
            "type": Str(required=True, enum=["card"]),
            "card": CARD_PARAMS,
            "billing_details": AnyVal(),
            "metadata": Meta(),
            "allow_redisplay": Str(),
            "customer": Str(),
            "payment_method": Str(),
        },
    )
    card_params = p.get("card") or {}
    number = card_params.get("number") or cards.TEST_TOKENS.get(card_params.get("token") or "")
    if not number:
        raise StripeError(
            400,
            "Missing required param: card[number].",
            code="parameter_missing",
            param="card[number]",
        )
    card = cards.lookup(number)
    if card is None:
        raise StripeError(
            402,
            cards.INVALID_NUMBER,
            type="card_error",
            code="incorrect_number",
            param="card[number]",
        )
    pm = new_payment_method(ctx, card)
    details = p.get("billing_details") or {}
    if isinstance(details, dict):
        pm["billing_details"]["email"] = details.get("email")
        pm["billing_details"]["name"] = details.get("name")
    return ctx.render(pm)


route("GET", "/v1/payment_methods/<pm_id>")(retrieve_stored("payment_method"))


@route("POST", "/v1/payment_methods/<pm_id>/attach")
def attach(ctx: Ctx, params: dict[str, Any], pm_id: str) -> dict[str, Any]:
    p = validate(params, {"customer": Str(required=True)})
    customer = ctx.store.require("customer", p["customer"], "customer")
    return ctx.render(attach_payment_method(ctx, pm_id, customer, "payment_method"))


@route("POST", "/v1/payment_methods/<pm_id>/detach")
def detach(ctx: Ctx, params: dict[str, Any], pm_id: str) -> dict[str, Any]:
    validate(params, {})
    pm = ctx.store.require("payment_method", pm_id)
    if not pm.get("customer"):
        raise bad_state(
            "The payment method you provided is not attached to a customer so "
            "detachment is impossible."
        )
    customer = ctx.store.get("customer", pm["customer"])
    if customer and customer["invoice_settings"].get("default_payment_method") == pm_id:
        customer["invoice_settings"]["default_payment_method"] = None
    before = ctx.render(pm)
    pm["customer"] = None
    ctx.emit("payment_method.detached", pm, {"customer": before["customer"]})
    return ctx.render(pm)


def _customer_pms(
    ctx: Ctx, params: dict[str, Any], customer_id: str | None, url: str
) -> dict[str, Any]:
    def keep(o: dict[str, Any], p: dict[str, Any]) -> bool:
        cid = customer_id or p.get("customer")
        if cid and o.get("customer") != cid:
            return False
        return not (p.get("type") and o["type"] != p["type"])

    return list_response(
        ctx,
        "payment_method",
        params,
        {"customer": Str(), "type": Str(), "allow_redisplay": Str()},
        url,
        keep,
    )


@route("GET", "/v1/payment_methods")
def list_payment_methods(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    return _customer_pms(ctx, params, None, "/v1/payment_methods")


@route("GET", "/v1/customers/<customer_id>/payment_methods")
def list_customer_payment_methods(
    ctx: Ctx, params: dict[str, Any], customer_id: str
) -> dict[str, Any]:
    ctx.store.require("customer", customer_id)
    return _customer_pms(ctx, params, customer_id, f"/v1/customers/{customer_id}/payment_methods")


# ------------------------------------------------------- payment intents


def new_payment_intent(
    ctx: Ctx,
    *,
    amount: int,
    currency: str,
    customer_id: str | None,
    description: str | None = None,
    metadata: dict[str, str] | None = None,
    payment_method: str | None = None,
) -> dict[str, Any]:
    pi_id = new_id("pi")
    pi = {
        "id": pi_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": 0,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": None,
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": "automatic",
        "client_secret": f"{pi_id}_secret_{random_token(25)}",
        "confirmation_method": "automatic",
        "created": ctx.now_for(customer_id),
        "currency": currency,
        "customer": customer_id,
        "customer_account": None,
        "description": description,
        "excluded_payment_method_types": None,
        "last_payment_error": None,
        "latest_charge": None,
        "livemode": False,
        "managed_payments": None,
        "metadata": dict(metadata or {}),
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": payment_method,
        "payment_method_configuration_details": None,
        "payment_method_options": {
            "card": {
                "installments": None,
                "mandate_options": None,
                "network": None,
                "request_three_d_secure": "automatic",
            }
        },
        "payment_method_types": ["card"],
        "processing": None,
        "receipt_email": None,
        "review": None,
        "setup_future_usage": None,
        "shipping": None,
        "source": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "requires_payment_method",
        "transfer_data": None,
        "transfer_group": None,
    }
    ctx.store.insert(pi)
    ctx.emit("payment_intent.created", pi)
    return pi


def _new_charge(
    ctx: Ctx, pi: dict[str, Any], pm: dict[str, Any] | None, ok: bool
) -> dict[str, Any]:
    card = (pm or {}).get("card") or {}
    charge = {
        "id": new_id("ch"),
        "object": "charge",
        "amount": pi["amount"],
        "amount_captured": pi["amount"] if ok else 0,
        "amount_refunded": 0,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        "balance_transaction": None,
        "billing_details": (pm or {}).get("billing_details"),
        "calculated_statement_descriptor": "SANDBOX",
        "captured": ok,
        "created": ctx.now_for(pi["customer"]),
        "currency": pi["currency"],
        "customer": pi["customer"],
        "description": pi["description"],
        "disputed": False,
        "failure_balance_transaction": None,
        "failure_code": None if ok else "card_declined",
        "failure_message": None if ok else cards.DECLINED,
        "fraud_details": {},
        "livemode": False,
        "metadata": {},
        "on_behalf_of": None,
        "outcome": {
            "network_status": "approved_by_network" if ok else "declined_by_network",
            "reason": None if ok else "generic_decline",
            "risk_level": "normal",
            "seller_message": "Payment complete."
            if ok
            else "The bank did not return any further details with this decline.",
            "type": "authorized" if ok else "issuer_declined",
        },
        "paid": ok,
        "payment_intent": pi["id"],
        "payment_method": (pm or {}).get("id"),
        "payment_method_details": {
            "card": {
                "brand": card.get("brand"),
                "last4": card.get("last4"),
                "exp_month": card.get("exp_month"),
                "exp_year": card.get("exp_year"),
                "funding": "credit",
                "country": "US",
            },
            "type": "card",
        },
        "receipt_email": None,
        "receipt_number": None,
        "receipt_url": None,
        "refunded": False,
        "review": None,
        "shipping": None,
        "source": None,
        "source_transfer": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "succeeded" if ok else "failed",
        "transfer_data": None,
        "transfer_group": None,
    }
    ctx.store.insert(charge)
    return charge


def confirm_payment_intent(ctx: Ctx, pi: dict[str, Any], pm: dict[str, Any] | None) -> bool:
    """Charge ``pm`` for the intent; emits the payment_intent/charge events."""
    if pi["status"] == "succeeded":
        return True
    if pm is None:
        pi["last_payment_error"] = {
            "type": "invalid_request_error",
            "code": "payment_intent_payment_attempt_failed",
            "message": "The customer has no default payment method.",
        }
        pi["status"] = "requires_payment_method"
        ctx.emit("payment_intent.payment_failed", pi)
        return False
    ok = cards.charge_succeeds(pm["_behavior"])
    charge = _new_charge(ctx, pi, pm, ok)
    pi["payment_method"] = pm["id"]
    pi["latest_charge"] = charge["id"]
    if ok:
        pi["status"] = "succeeded"
        pi["amount_received"] = pi["amount"]
        pi["last_payment_error"] = None
        ctx.emit("charge.succeeded", charge)
        ctx.emit("payment_intent.succeeded", pi)
    else:
        pi["status"] = "requires_payment_method"
        pi["last_payment_error"] = {
            "type": "card_error",
            "code": "card_declined",
            "decline_code": "generic_decline",
            "message": cards.DECLINED,
            "charge": charge["id"],
            "payment_method": ctx.render(pm),
        }
        ctx.emit("charge.failed", charge)
        ctx.emit("payment_intent.payment_failed", pi)
    return ok


@route("GET", "/v1/payment_intents")
def list_payment_intents(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    def keep(o: dict[str, Any], p: dict[str, Any]) -> bool:
        return not (p.get("customer") and o["customer"] != p["customer"])

    return list_response(
        ctx, "payment_intent", params, {"customer": Str()}, "/v1/payment_intents", keep
    )


@route("GET", "/v1/payment_intents/<pi_id>")
def retrieve_payment_intent(ctx: Ctx, params: dict[str, Any], pi_id: str) -> dict[str, Any]:
    validate(params, {"client_secret": Str()})
    return ctx.render(ctx.store.require("payment_intent", pi_id))


@route("GET", "/v1/charges")
def list_charges(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    def keep(o: dict[str, Any], p: dict[str, Any]) -> bool:
        if p.get("customer") and o["customer"] != p["customer"]:
            return False
        return not (p.get("payment_intent") and o["payment_intent"] != p["payment_intent"])

    return list_response(
        ctx, "charge", params, {"customer": Str(), "payment_intent": Str()}, "/v1/charges", keep
    )


@route("GET", "/v1/charges/<charge_id>")
def retrieve_charge(ctx: Ctx, params: dict[str, Any], charge_id: str) -> dict[str, Any]:
    validate(params, {})
    charge = ctx.store.get("charge", charge_id)
    if charge is None:
        raise not_found("charge", charge_id)
    return ctx.render(charge)
