"""Completing a Checkout Session when its hosted page is paid: the card's outcome, the
customer, the payment method, and the subscription or payment it buys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import cards
from ..context import Ctx
from .checkout import expire_session
from .constants import DAY
from .customers import new_customer
from .lifecycle import create_subscription
from .payment_intents import confirm_payment_intent, new_payment_intent
from .payment_methods import new_payment_method
from .tax import tax_id_of


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
    if not card_number and _card_optional(session):
        # payment_method_collection=if_required and nothing due (a trial): no card needed.
        if not session["customer"] and not session["customer_email"] and not email:
            return PayResult("error", "Please enter your email address.", 400)
        complete_session(ctx, session, None, email)
        return PayResult("complete")
    card = cards.lookup(card_number or "")
    if card is None:
        return PayResult("error", cards.INVALID_NUMBER, 400)
    if not session["customer"] and not session["customer_email"] and not email:
        return PayResult("error", "Please enter your email address.", 400)
    charges_now = (session["amount_total"] or 0) > 0
    if card.behavior == "decline" or (card.behavior == "fail_later" and charges_now):
        return PayResult("error", cards.DECLINED, 402)
    if card.behavior in cards.AUTHENTICATING and not authenticated:
        session["_pending_card"] = card.number
        session["_pending_email"] = email
        return PayResult("authenticate")
    complete_session(ctx, session, card, email)
    return PayResult("complete")


def _card_optional(session: dict[str, Any]) -> bool:
    return (
        session["mode"] == "subscription"
        and session.get("payment_method_collection") == "if_required"
        and (session["amount_total"] or 0) == 0
    )


def complete_session(
    ctx: Ctx, session: dict[str, Any], card: cards.TestCard | None, email: str | None
) -> None:
    """The page was paid with ``card``: make what the session sells, then complete it."""
    session.pop("_pending_card", None)
    session.pop("_pending_email", None)
    customer = ctx.store.get("customer", session["customer"]) if session["customer"] else None
    email = email or session["customer_email"] or (customer or {}).get("email")
    customer = _customer_for(ctx, session, customer, email)
    pm = _saved_card(ctx, card, customer, email) if card is not None else None
    if pm is not None:
        ctx.authenticated.add(pm["id"])  # the customer is on the page (and passed 3-D Secure)
    session["customer"] = customer["id"] if customer else None
    _keep_address(session, customer)
    tax_ids = _keep_tax_id(session, customer)
    session["customer_details"] = {**_customer_details(customer, email), "tax_ids": tax_ids}
    if session["mode"] == "subscription":
        assert customer is not None
        _subscribe(ctx, session, customer, pm)
    elif session["mode"] == "payment":
        assert pm is not None
        _take_payment(ctx, session, customer, pm)
    else:
        session["payment_status"] = "no_payment_required"
    session["status"] = "complete"
    session["url"] = None
    ctx.emit("checkout.session.completed", session)


def _keep_address(session: dict[str, Any], customer: dict[str, Any] | None) -> None:
    """The billing address typed on the page is saved on the customer when the session says
    `customer_update[address]=auto` (or the session made the customer)."""
    country = session.pop("_country", None)
    if not country or customer is None:
        return
    if session["_customer_update"].get("address") == "auto" or not customer.get("address"):
        customer["address"] = {
            "city": None,
            "country": country,
            "line1": None,
            "line2": None,
            "postal_code": None,
            "state": None,
        }


def _keep_tax_id(session: dict[str, Any], customer: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The tax id typed on the page (`tax_id_collection[enabled]`): on the session's
    customer_details and saved on the customer, whose later invoices carry it
    (`customer_tax_ids`), as Stripe does."""
    typed = session.pop("_tax_id", None)
    if not typed:
        return []
    tax_id = tax_id_of(typed)
    if customer is not None:
        customer["_tax_ids"] = [tax_id]
    return [tax_id]


def _customer_for(
    ctx: Ctx, session: dict[str, Any], customer: dict[str, Any] | None, email: str | None
) -> dict[str, Any] | None:
    """The session's customer, created now when the mode needs one."""
    if customer is None and (
        session["mode"] in ("subscription", "setup") or session["customer_creation"] == "always"
    ):
        customer = new_customer(ctx, {"email": email})
    return customer


def _saved_card(
    ctx: Ctx, card: cards.TestCard, customer: dict[str, Any] | None, email: str | None
) -> dict[str, Any]:
    pm = new_payment_method(
        ctx, card, email=email, created=ctx.now_for(customer["id"] if customer else None)
    )
    if customer is not None:
        pm["customer"] = customer["id"]
        ctx.emit("payment_method.attached", pm)
    return pm


def _customer_details(customer: dict[str, Any] | None, email: str | None) -> dict[str, Any]:
    blank = dict.fromkeys(("city", "country", "line1", "line2", "postal_code", "state"))
    return {
        "address": (customer or {}).get("address") or blank,
        "business_name": None,
        "email": email,
        "individual_name": None,
        "name": (customer or {}).get("name"),
        "phone": (customer or {}).get("phone"),
        "tax_exempt": (customer or {}).get("tax_exempt", "none"),
        "tax_ids": [],
    }


def _subscribe(
    ctx: Ctx, session: dict[str, Any], customer: dict[str, Any], pm: dict[str, Any] | None
) -> None:
    sd = session["_subscription_data"]
    trial_end = sd.get("trial_end")
    if not trial_end and sd.get("trial_period_days"):
        trial_end = ctx.now_for(customer["id"]) + sd["trial_period_days"] * DAY
    entries: list[tuple[dict[str, Any], int, dict[str, str]]] = []
    for li in session["_line_items"]:
        price = ctx.store.get("price", li["price"])
        if price is not None and price["type"] == "recurring":
            entries.append((price, li["quantity"], {}))
    sub = create_subscription(
        ctx,
        customer,
        entries,
        trial_end=trial_end,
        metadata=sd.get("metadata") or {},
        description=sd.get("description"),
        default_payment_method=pm["id"] if pm is not None else None,
        trial_settings=sd.get("trial_settings"),
        automatic_tax=bool(session["automatic_tax"]["enabled"]),
    )
    session["subscription"] = sub["id"]
    session["invoice"] = sub["latest_invoice"]
    session["payment_status"] = (
        "paid" if (session["amount_total"] or 0) > 0 else "no_payment_required"
    )


def _take_payment(
    ctx: Ctx, session: dict[str, Any], customer: dict[str, Any] | None, pm: dict[str, Any]
) -> None:
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
