"""Payment intents and their charges: creating, confirming with a test card (succeeded,
declined, or waiting for 3-D Secure), capturing and canceling."""

from __future__ import annotations

from typing import Any

from .. import cards
from ..context import Ctx
from ..errors import bad_state
from ..ids import new_id, random_token
from ..params import apply_metadata
from .payment_methods import declined

CANCELABLE = ("requires_payment_method", "requires_confirmation", "requires_action", "processing")


def _card_options() -> dict[str, Any]:
    return {
        "card": {
            "installments": None,
            "mandate_options": None,
            "network": None,
            "request_three_d_secure": "automatic",
        }
    }


def _unset_intent_fields() -> dict[str, Any]:
    keys = (
        "application application_fee_amount automatic_payment_methods canceled_at "
        "cancellation_reason excluded_payment_method_types last_payment_error latest_charge "
        "managed_payments next_action on_behalf_of payment_method_configuration_details "
        "processing receipt_email review setup_future_usage shipping source "
        "statement_descriptor statement_descriptor_suffix transfer_data transfer_group "
        "customer_account"
    )
    return dict.fromkeys(keys.split())


def new_payment_intent(
    ctx: Ctx,
    *,
    amount: int,
    currency: str,
    customer_id: str | None,
    description: str | None = None,
    metadata: dict[str, str] | None = None,
    payment_method: str | None = None,
    capture_method: str = "automatic",
) -> dict[str, Any]:
    pi_id = new_id("pi")
    pi = {
        **_unset_intent_fields(),
        "id": pi_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": 0,
        "capture_method": capture_method,
        "client_secret": f"{pi_id}_secret_{random_token(25)}",
        "confirmation_method": "automatic",
        "created": ctx.now_for(customer_id),
        "currency": currency,
        "customer": customer_id,
        "description": description,
        "livemode": False,
        "metadata": dict(metadata or {}),
        "payment_method": payment_method,
        "payment_method_options": _card_options(),
        "payment_method_types": ["card"],
        "status": "requires_confirmation" if payment_method else "requires_payment_method",
    }
    ctx.store.insert(pi)
    ctx.emit("payment_intent.created", pi)
    return pi


def _outcome(ok: bool) -> dict[str, Any]:
    return {
        "network_status": "approved_by_network" if ok else "declined_by_network",
        "reason": None if ok else "generic_decline",
        "risk_level": "normal",
        "seller_message": "Payment complete."
        if ok
        else "The bank did not return any further details with this decline.",
        "type": "authorized" if ok else "issuer_declined",
    }


def _unset_charge_fields() -> dict[str, Any]:
    keys = (
        "application application_fee application_fee_amount balance_transaction "
        "failure_balance_transaction on_behalf_of receipt_email receipt_number receipt_url "
        "review shipping source source_transfer statement_descriptor "
        "statement_descriptor_suffix transfer_data transfer_group"
    )
    return dict.fromkeys(keys.split())


def new_charge(
    ctx: Ctx, pi: dict[str, Any], pm: dict[str, Any] | None, ok: bool, captured: bool = True
) -> dict[str, Any]:
    card = (pm or {}).get("card") or {}
    charge = {
        **_unset_charge_fields(),
        "id": new_id("ch"),
        "object": "charge",
        "amount": pi["amount"],
        "amount_captured": pi["amount"] if ok and captured else 0,
        "amount_refunded": 0,
        "billing_details": (pm or {}).get("billing_details"),
        "calculated_statement_descriptor": "SANDBOX",
        "captured": ok and captured,
        "created": ctx.now_for(pi["customer"]),
        "currency": pi["currency"],
        "customer": pi["customer"],
        "description": pi["description"],
        "disputed": False,
        "failure_code": None if ok else "card_declined",
        "failure_message": None if ok else cards.DECLINED,
        "fraud_details": {},
        "livemode": False,
        "metadata": {},
        "outcome": _outcome(ok),
        "paid": ok,
        "payment_intent": pi["id"],
        "payment_method": (pm or {}).get("id"),
        "payment_method_details": {
            "card": {k: card.get(k) for k in ("brand", "last4", "exp_month", "exp_year")}
            | {"funding": "credit", "country": "US"},
            "type": "card",
        },
        "refunded": False,
        "status": "succeeded" if ok else "failed",
    }
    ctx.store.insert(charge)
    return charge


def confirm_payment_intent(
    ctx: Ctx, pi: dict[str, Any], pm: dict[str, Any] | None, *, off_session: bool = True
) -> bool:
    """Charge ``pm`` for the intent; emits the payment_intent/charge events.

    A card that needs 3-D Secure leaves the intent ``requires_action`` unless it was
    authenticated in this request (the hosted Checkout page's authentication step)."""
    if pi["status"] in ("succeeded", "requires_capture"):
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
    authenticated = pm["id"] in ctx.authenticated
    pi["payment_method"] = pm["id"]
    if cards.needs_action(pm["_behavior"], off_session) and not authenticated:
        pi["status"] = "requires_action"
        pi["next_action"] = {"type": "use_stripe_sdk", "use_stripe_sdk": {"type": "three_d_secure"}}
        ctx.emit("payment_intent.requires_action", pi)
        return False
    ok = cards.charge_succeeds(pm["_behavior"]) or (
        authenticated and pm["_behavior"] in ("authenticate_always", "authenticate_every_time")
    )
    if ok:
        _succeed(ctx, pi, pm)
    else:
        _fail(ctx, pi, pm)
    return ok


def _succeed(ctx: Ctx, pi: dict[str, Any], pm: dict[str, Any]) -> None:
    manual = pi["capture_method"] != "automatic"
    charge = new_charge(ctx, pi, pm, True, captured=not manual)
    pi["latest_charge"] = charge["id"]
    pi["last_payment_error"] = None
    pi["next_action"] = None
    if manual:
        pi["status"] = "requires_capture"
        pi["amount_capturable"] = pi["amount"]
        ctx.emit("charge.succeeded", charge)
        ctx.emit("payment_intent.amount_capturable_updated", pi)
        return
    pi["status"] = "succeeded"
    pi["amount_received"] = pi["amount"]
    ctx.emit("charge.succeeded", charge)
    ctx.emit("payment_intent.succeeded", pi)


def _fail(ctx: Ctx, pi: dict[str, Any], pm: dict[str, Any]) -> None:
    charge = new_charge(ctx, pi, pm, False)
    pi["latest_charge"] = charge["id"]
    pi["next_action"] = None
    pi["status"] = "requires_payment_method"
    pi["last_payment_error"] = {
        "type": "card_error",
        "code": "card_declined",
        "decline_code": cards.decline_code(pm["_behavior"]),
        "message": cards.DECLINED,
        "charge": charge["id"],
        "payment_method": ctx.render(pm),
    }
    ctx.emit("charge.failed", charge)
    ctx.emit("payment_intent.payment_failed", pi)


def confirm_or_decline(
    ctx: Ctx, pi: dict[str, Any], pm: dict[str, Any] | None, off_session: bool
) -> None:
    """``confirm`` through the API: a decline is Stripe's 402 naming the intent."""
    if pi["status"] not in ("requires_payment_method", "requires_confirmation", "requires_action"):
        raise bad_state(
            f"This PaymentIntent's status is {pi['status']}, so it cannot be confirmed.",
        )
    if not confirm_payment_intent(ctx, pi, pm, off_session=off_session) and (
        pi["status"] == "requires_payment_method"
    ):
        behavior = (pm or {}).get("_behavior", "decline")
        raise declined(behavior, payment_intent=ctx.render(pi))


def update_payment_intent(ctx: Ctx, pi: dict[str, Any], p: dict[str, Any]) -> None:
    if pi["status"] in ("succeeded", "canceled"):
        raise bad_state(f"This PaymentIntent's status is {pi['status']}; it cannot be updated.")
    for key in ("amount", "currency", "customer", "description", "receipt_email"):
        if key in p:
            pi[key] = p[key]
    if "metadata" in p:
        pi["metadata"] = apply_metadata(pi["metadata"], p["metadata"])


def capture_payment_intent(ctx: Ctx, pi: dict[str, Any]) -> None:
    if pi["status"] != "requires_capture":
        raise bad_state(
            f"This PaymentIntent could not be captured because it has a status of {pi['status']}."
        )
    charge = ctx.store.require("charge", pi["latest_charge"])
    charge["captured"] = True
    charge["amount_captured"] = pi["amount"]
    pi["status"] = "succeeded"
    pi["amount_capturable"] = 0
    pi["amount_received"] = pi["amount"]
    ctx.emit("charge.captured", charge)
    ctx.emit("payment_intent.succeeded", pi)


def cancel_payment_intent(ctx: Ctx, pi: dict[str, Any], reason: str | None) -> None:
    if pi["status"] not in (*CANCELABLE, "requires_capture"):
        raise bad_state(
            "You cannot cancel this PaymentIntent because it has a status of "
            f"{pi['status']}. Only a PaymentIntent with one of the following statuses may be "
            "canceled: " + ", ".join([*CANCELABLE, "requires_capture"]) + "."
        )
    pi["status"] = "canceled"
    pi["canceled_at"] = ctx.now_for(pi["customer"])
    pi["cancellation_reason"] = reason
    pi["next_action"] = None
    ctx.emit("payment_intent.canceled", pi)
