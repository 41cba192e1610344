"""The hosted Checkout page, with its 3-D Secure step."""

from __future__ import annotations

import re
from html import escape
from typing import Any

from werkzeug.wrappers import Request, Response

from .. import billing, cards
from ..billing.checkout_completion import PayResult, pay_session
from ..context import Ctx
from ..errors import StripeError
from .html import error_html, page, redirect


def _session(ctx: Ctx, session_id: str) -> dict[str, Any]:
    session = ctx.store.get("checkout.session", session_id)
    if session is None:
        raise StripeError(404, "This Checkout Session does not exist.")
    return session


def _line_items_html(ctx: Ctx, session: dict[str, Any]) -> str:
    rows = []
    for li in session["_line_items"]:
        price = ctx.store.get("price", li["price"]) or {}
        rec = price.get("recurring")
        every = f" / {rec['interval']}" if rec else ""
        rows.append(
            f'<tr class="line_item" data-price="{escape(li["price"])}">'
            f'<td class="description">{escape(li["description"] or "")}</td>'
            f'<td class="quantity">{li["quantity"]}</td>'
            f'<td class="amount">{escape(billing.money(li["amount_total"], li["currency"]))}'
            f"{escape(every)}</td></tr>"
        )
    return (
        '<table id="line_items"><tr><th>Item</th><th>Qty</th><th>Price</th></tr>'
        + "".join(rows)
        + "</table>"
    )


def _card_field(session: dict[str, Any]) -> str:
    # payment_method_collection=if_required with nothing due (a trial): the card is optional.
    optional = (
        session.get("payment_method_collection") == "if_required"
        and (session["amount_total"] or 0) == 0
    )
    return (
        '<p><label for="card_number">Card number'
        f"{' (optional during the trial)' if optional else ''}</label><br>"
        '<input id="card_number" name="card_number" inputmode="numeric" '
        'autocomplete="cc-number" placeholder="4242 4242 4242 4242"'
        f"{'' if optional else ' required'}></p>"
    )


def checkout_page(
    ctx: Ctx, session: dict[str, Any], error: str | None = None, status: int = 200
) -> Response:
    sid = session["id"]
    action = f"/checkout/{sid}"
    parts = [_line_items_html(ctx, session)]
    sd = session["_subscription_data"]
    if sd.get("trial_period_days"):
        parts.append(
            f'<p id="trial" class="note">{sd["trial_period_days"]} days free, '
            "then billed as above.</p>"
        )
    if session["amount_total"] is not None:
        total = billing.money(session["amount_total"], session["currency"] or "usd")
        parts.append(f'<p id="total">Total due today: <strong>{escape(total)}</strong></p>')
    parts.append(error_html(error))
    if session["status"] != "open":
        state = "complete" if session["status"] == "complete" else "expired"
        parts.append(f'<p id="status" class="note">This Checkout Session is {state}.</p>')
        return page("Checkout", "\n".join(parts), status)
    customer = ctx.store.get("customer", session["customer"]) if session["customer"] else None
    email = session["customer_email"] or (customer or {}).get("email")
    form = [f'<form id="payment-form" method="post" action="{escape(action)}">']
    if not session["customer"] and not session["customer_email"]:
        form.append(
            '<p><label for="email">Email</label><br>'
            '<input id="email" name="email" type="email" autocomplete="email" '
            "required></p>"
        )
    elif email:
        form.append(f'<p id="customer_email" class="note">Paying as {escape(email)}</p>')
    button = (
        "Subscribe"
        if session["mode"] == "subscription"
        else ("Save card" if session["mode"] == "setup" else "Pay")
    )
    form.append(_address_html(session))
    form.append(_tax_id_html(session))
    form.append(
        _card_field(session)
        + '<p><input id="card_expiry" name="card_expiry" placeholder="MM / YY"> '
        '<input id="card_cvc" name="card_cvc" placeholder="CVC"></p>'
        f'<p><button id="submit" type="submit">{button}</button></p></form>'
    )
    parts.append("".join(form))
    if session["cancel_url"]:
        parts.append(
            f'<p><a id="cancel" href="{escape(session["cancel_url"])}">Cancel and return</a></p>'
        )
    parts.append(
        '<p class="note">Test cards: 4242 4242 4242 4242 (succeeds), '
        "4000 0000 0000 0002 (declined), 4000 0025 0000 3155 (authentication), "
        "4000 0000 0000 0341 (attaches, later charges fail).</p>"
    )
    return page("Checkout", "\n".join(parts), status)


def _address_html(session: dict[str, Any]) -> str:
    """A billing country field when the session requires the address (Stripe Tax needs it)."""
    if session.get("billing_address_collection") != "required":
        return ""
    return (
        '<p><label for="country">Billing country (ISO code)</label><br>'
        '<input id="country" name="country" maxlength="2" autocomplete="country" '
        'placeholder="GB" required></p>'
    )


def _tax_id_html(session: dict[str, Any]) -> str:
    """An optional tax id field when the session collects them (`tax_id_collection`)."""
    if not (session.get("tax_id_collection") or {}).get("enabled"):
        return ""
    return (
        '<p><label for="tax_id">VAT or tax ID (if you buy as a business)</label><br>'
        '<input id="tax_id" name="tax_id" maxlength="20" autocomplete="off" '
        'placeholder="DE123456789"></p>'
    )


def _after_checkout(ctx: Ctx, session: dict[str, Any], result: PayResult) -> Response:
    if result.outcome == "authenticate":
        return authenticate_page(session)
    if result.outcome == "error":
        return checkout_page(ctx, session, result.message, result.status)
    success = session.get("success_url")
    if success:
        return redirect(success.replace("{CHECKOUT_SESSION_ID}", session["id"]))
    return page("Payment complete", '<p id="status">Thank you! Your payment is complete.</p>')


def checkout_get(ctx: Ctx, request: Request, parts: list[str]) -> Response:
    return checkout_page(ctx, _session(ctx, parts[1]))


def checkout_post(ctx: Ctx, request: Request, parts: list[str]) -> Response:
    session = _session(ctx, parts[1])
    country = (request.form.get("country") or "").strip().upper()
    if session.get("billing_address_collection") == "required" and session["status"] == "open":
        if len(country) != 2 or not country.isalpha():
            return checkout_page(ctx, session, "Enter your billing country.", 400)
        session["_country"] = country
    tax_id = re.sub(r"[\s.-]", "", request.form.get("tax_id") or "").upper()
    if tax_id and (session.get("tax_id_collection") or {}).get("enabled"):
        if not re.fullmatch(r"[A-Z0-9]{4,20}", tax_id):
            return checkout_page(ctx, session, "Enter a valid tax ID, or leave it empty.", 400)
        session["_tax_id"] = tax_id
    result = pay_session(
        ctx,
        session,
        request.form.get("card_number", ""),
        (request.form.get("email") or "").strip() or None,
    )
    return _after_checkout(ctx, session, result)


def authenticate_page(session: dict[str, Any]) -> Response:
    action = escape(f"/checkout/{session['id']}/authenticate")
    body = (
        '<p id="authenticate-info">Your bank requires you to authenticate this payment '
        "(3-D Secure test page).</p>"
        f'<form id="approve-form" method="post" action="{action}" class="inline">'
        '<input type="hidden" name="action" value="approve">'
        '<button id="approve" type="submit">Complete authentication</button></form> '
        f'<form id="fail-form" method="post" action="{action}" class="inline">'
        '<input type="hidden" name="action" value="fail">'
        '<button id="fail" type="submit">Fail authentication</button></form>'
    )
    return page("Authenticate payment", body)


def checkout_authenticate(ctx: Ctx, request: Request, parts: list[str]) -> Response:
    session = _session(ctx, parts[1])
    action = request.form.get("action", "")
    pending = session.get("_pending_card")
    if session["status"] != "open" or not pending:
        return checkout_page(ctx, session, "There is no payment waiting for authentication.", 400)
    if action == "approve":
        result = pay_session(
            ctx, session, pending, session.get("_pending_email"), authenticated=True
        )
        return _after_checkout(ctx, session, result)
    if action == "fail":
        session.pop("_pending_card", None)
        return checkout_page(ctx, session, cards.AUTH_FAILED, 402)
    return authenticate_page(session)
