"""Stripe's private ``payment_pages`` API, as the Stripe CLI's ``checkout.session.completed``
recipe uses it: read the page of a Checkout Session, then confirm it with a payment method
(what the hosted page does when the customer pays)."""

from __future__ import annotations

from typing import Any

from .. import cards
from ..billing.checkout_completion import pay_session
from ..billing.payment_methods import resolve_payment_method
from ..context import Ctx
from ..errors import StripeError
from ..params import AnyVal, Int, Str, validate
from ..routes import route


def _page(session: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": session["id"],
        "object": "checkout.session",
        "amount_total": session["amount_total"],
        "currency": session["currency"],
        "mode": session["mode"],
        "status": session["status"],
    }


@route("GET", "/v1/payment_pages/<session_id>")
def retrieve_payment_page(ctx: Ctx, params: dict[str, Any], session_id: str) -> dict[str, Any]:
    return _page(ctx.store.require("checkout.session", session_id))


@route("POST", "/v1/payment_pages/<session_id>/confirm")
def confirm_payment_page(ctx: Ctx, params: dict[str, Any], session_id: str) -> dict[str, Any]:
    p = validate(
        params,
        {
            "payment_method": Str(required=True),
            "expected_amount": Int(min=0),
            "email": Str(),
            "expected_payment_method_type": Str(),
            "eid": AnyVal(),
        },
    )
    session = ctx.store.require("checkout.session", session_id)
    pm = resolve_payment_method(ctx, p["payment_method"], "payment_method")
    details = pm.get("card") or {}
    card = next(
        (
            c
            for c in cards.CARDS.values()
            if c.last4 == details.get("last4")
            and c.brand == details.get("brand")
            and c.behavior == pm.get("_behavior")
        ),
        None,
    )
    if card is None:
        raise StripeError(400, cards.INVALID_NUMBER, param="payment_method")
    expected = p.get("expected_amount")
    if expected is not None and expected != (session["amount_total"] or 0):
        raise StripeError(
            400, "The expected amount does not match the session's.", param="expected_amount"
        )
    result = pay_session(ctx, session, card.number, p.get("email") or "stripe@example.com")
    if result.outcome == "authenticate":
        raise StripeError(
            402,
            "This payment requires authentication.",
            type="card_error",
            code="authentication_required",
        )
    if result.outcome == "error":
        raise StripeError(
            result.status,
            result.message,
            type="card_error" if result.status == 402 else "invalid_request_error",
            code="card_declined" if result.status == 402 else None,
        )
    return _page(session)
