"""The hosted billing portal: subscriptions (cancel, renew, switch plan) and invoices."""

from __future__ import annotations

from html import escape
from typing import Any

from werkzeug.wrappers import Request, Response

from .. import billing
from ..billing import portal
from ..billing.portal_payment import update_payment_method
from ..context import Ctx
from ..errors import StripeError
from .html import date, error_html, page, redirect


def _portal_session(ctx: Ctx, session_id: str) -> dict[str, Any]:
    session = ctx.store.get("billing_portal.session", session_id)
    if session is None:
        raise StripeError(404, "This billing portal session does not exist.")
    return session


def _price_label(ctx: Ctx, price: dict[str, Any]) -> str:
    rec = price.get("recurring") or {}
    label = f"{billing.money(price['unit_amount'] or 0, price['currency'])} / {rec.get('interval')}"
    if price.get("nickname"):
        label = f"{price['nickname']} ({label})"
    return label


def portal_page(
    ctx: Ctx, session: dict[str, Any], error: str | None = None, status: int = 200
) -> Response:
    customer = ctx.store.get("customer", session["customer"]) or {}
    action = escape(f"/portal/{session['id']}")
    parts = [
        f'<p id="customer_email" class="note">{escape(customer.get("email") or "")}</p>',
        error_html(error),
    ]
    subs = portal.live_subscriptions(ctx, session["customer"])
    if not subs:
        parts.append('<p id="no_subscriptions">You have no active subscriptions.</p>')
    parts.extend(_subscription_html(ctx, sub, action) for sub in subs)
    parts.append(_payment_method_html(action))
    parts.append(_invoices_html(ctx, session["customer"]))
    if session.get("return_url"):
        parts.append(
            f'<p><a id="return" href="{escape(session["return_url"])}">Return to '
            "the merchant</a></p>"
        )
    return page("Billing portal", "\n".join(parts), status)


def _subscription_html(ctx: Ctx, sub: dict[str, Any], action: str) -> str:
    sid = escape(sub["id"])
    items = billing.items_of(ctx.store, sub)
    price = billing.price_of(ctx, items[0]) if items else None
    name = billing.product_name(ctx, price) if price else ""
    block = [
        f'<div class="subscription" id="{sid}" data-status="{escape(sub["status"])}">',
        f'<h2 class="product">{escape(name)}</h2>',
    ]
    if price:
        block.append(
            f'<p class="price" data-price="{escape(price["id"])}">'
            f"{escape(_price_label(ctx, price))}</p>"
        )
    block.append(
        f'<p class="status">Status: <span id="status-{sid}">{escape(sub["status"])}</span></p>'
    )
    block.append(_cancel_or_resume_html(ctx, sub, action))
    block.append(_switch_html(ctx, sub, action))
    block.append("</div>")
    return "".join(block)


def _cancel_or_resume_html(ctx: Ctx, sub: dict[str, Any], action: str) -> str:
    sid = escape(sub["id"])
    if sub["cancel_at"]:
        return (
            f'<p class="cancel_notice" id="cancel-notice-{sid}">Cancels on '
            f"{date(sub['cancel_at'])}</p>"
            f'<form method="post" action="{action}" class="inline">'
            f'<input type="hidden" name="subscription" value="{sid}">'
            f'<button id="resume-{sid}" class="resume" name="action" value="resume" '
            'type="submit">Renew subscription</button></form>'
        )
    label = "Trial ends" if sub["status"] == "trialing" else "Renews on"
    _start, end = billing.current_period(ctx, sub)
    return (
        f'<p class="renews">{label} {date(end)}</p>'
        f'<form method="post" action="{action}" class="inline">'
        f'<input type="hidden" name="subscription" value="{sid}">'
        f'<button id="cancel-{sid}" class="cancel" name="action" value="cancel" '
        'type="submit">Cancel subscription</button></form>'
    )


def _switch_html(ctx: Ctx, sub: dict[str, Any], action: str) -> str:
    options = portal.switch_options(ctx, sub)
    if not options:
        return ""
    sid = escape(sub["id"])
    opts = "".join(
        f'<option value="{escape(p["id"])}">{escape(_price_label(ctx, p))}</option>'
        for p in options
    )
    return (
        f'<form method="post" action="{action}">'
        f'<input type="hidden" name="action" value="switch">'
        f'<input type="hidden" name="subscription" value="{sid}">'
        f'<label for="price-{sid}">Switch plan</label> '
        f'<select id="price-{sid}" name="price">{opts}</select> '
        f'<button id="switch-{sid}" class="switch" type="submit">'
        "Update plan</button></form>"
    )


def _payment_method_html(action: str) -> str:
    return (
        f'<form id="payment-method-form" method="post" action="{action}">'
        '<input type="hidden" name="action" value="update_payment_method">'
        '<label for="new_card_number">Update payment method</label> '
        '<input id="new_card_number" name="card_number" required> '
        '<button id="update-payment-method" type="submit">Save card</button></form>'
    )


def _invoices_html(ctx: Ctx, customer_id: str) -> str:
    invoices = [
        i
        for i in ctx.store.all("invoice")
        if i["customer"] == customer_id and i["status"] != "draft"
    ]
    if not invoices:
        return ""
    rows = "".join(
        f'<tr class="invoice"><td>{date(i["created"])}</td><td>{escape(i["number"] or "")}'
        f"</td><td>{escape(billing.money(i['total'], i['currency']))}</td>"
        f"<td>{escape(i['status'])}</td></tr>"
        for i in invoices
    )
    return f'<h2>Invoice history</h2><table id="invoices">{rows}</table>'


def portal_get(ctx: Ctx, request: Request, parts: list[str]) -> Response:
    return portal_page(ctx, _portal_session(ctx, parts[1]))


def portal_post(ctx: Ctx, request: Request, parts: list[str]) -> Response:
    session = _portal_session(ctx, parts[1])
    action = request.form.get("action", "")
    sub_id = request.form.get("subscription", "")
    if action == "update_payment_method":
        customer = ctx.store.get("customer", session["customer"])
        problem = (
            update_payment_method(ctx, customer, request.form.get("card_number", ""))
            if customer is not None
            else "This customer no longer exists."
        )
        if problem is not None:
            return portal_page(ctx, session, problem, 400)
        return redirect(f"/portal/{session['id']}")
    subs = portal.live_subscriptions(ctx, session["customer"])
    if not sub_id and len(subs) == 1:
        sub_id = subs[0]["id"]
    sub = next((s for s in subs if s["id"] == sub_id), None)
    if sub is None:
        return portal_page(ctx, session, "That subscription is not available.", 400)
    error = portal.portal_action(ctx, sub, action, request.form.get("price", ""))
    if error is not None:
        return portal_page(ctx, session, error, 400)
    flow = session.get("flow") or {}
    after = flow.get("after_completion") or {}
    if after.get("type") == "redirect" and after.get("redirect"):
        return redirect(after["redirect"]["return_url"])
    return redirect(f"/portal/{session['id']}")
