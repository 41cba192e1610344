"""Server-rendered hosted pages: Checkout (with a 3-D Secure step), the
billing portal, and the hosted invoice page. Plain HTML with stable ids."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from html import escape
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from . import billing, cards
from .context import Ctx
from .resources.checkout import PayResult, complete_session, pay_session
from .resources.invoices import pay_invoice
from .resources.payments import new_payment_method
from .wire import StripeError

if TYPE_CHECKING:
    from .sandbox import Sandbox

STYLE = """
body{font-family:system-ui,sans-serif;max-width:720px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.4em;
text-align:left}.error{color:#b00020;font-weight:bold}.note{color:#555}
form.inline{display:inline}input,select,button{font-size:1em;margin:.2em 0;padding:.3em}
.subscription{border:1px solid #ccc;border-radius:6px;padding:1em;margin:1em 0}
"""


def page(title: str, body: str, status: int = 200) -> Response:
    html = (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f'<body>\n<h1 id="title">{escape(title)}</h1>\n{body}\n</body></html>\n'
    )
    return Response(html, status=status, content_type="text/html; charset=utf-8")


def redirect(location: str) -> Response:
    return Response("", status=303, headers={"Location": location})


def date(ts: int | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d")


def error_html(message: str | None) -> str:
    if not message:
        return ""
    return f'<p id="error" class="error" role="alert">{escape(message)}</p>'


def handle_hosted(sb: Sandbox, request: Request) -> Response:
    parts = [p for p in request.path.split("/") if p]
    method = request.method.upper()
    base_url = sb.base_url_for(request)
    routes: dict[tuple[str, int, str], Callable[[Ctx, Request, list[str]], Response]] = {
        ("checkout", 2, "GET"): checkout_get,
        ("checkout", 2, "POST"): checkout_post,
        ("checkout", 3, "POST"): checkout_authenticate,
        ("portal", 2, "GET"): portal_get,
        ("portal", 2, "POST"): portal_post,
        ("invoice", 2, "GET"): invoice_get,
        ("invoice", 2, "POST"): invoice_post,
        ("invoice", 3, "GET"): invoice_pdf,
    }
    fn = routes.get((parts[0], len(parts), method)) if parts else None
    if fn is None or (len(parts) == 3 and parts[2] not in ("authenticate", "pdf")):
        return page("Not found", error_html("This page does not exist."), 404)
    sb.run_due(base_url)
    with sb.store.lock:
        ctx = Ctx(sb.store, sb.config, base_url)
        sb.store.begin()
        try:
            response = fn(ctx, request, parts)
            sb.store.commit()
        except StripeError as err:
            sb.store.rollback()
            ctx.events.clear()
            response = page("Error", error_html(err.message), err.status)
        except Exception:
            sb.store.rollback()
            ctx.events.clear()
            traceback.print_exc()
            response = page(
                "Error", error_html("An unexpected error occurred in the Stripe sandbox."), 500
            )
        finally:
            sb.publish(ctx)
        if method == "POST":
            sb.store.save()
    return response


# ---------------------------------------------------------------- checkout


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
    form.append(
        '<p><label for="card_number">Card number</label><br>'
        '<input id="card_number" name="card_number" inputmode="numeric" '
        'autocomplete="cc-number" placeholder="4242 4242 4242 4242" required></p>'
        '<p><input id="card_expiry" name="card_expiry" placeholder="MM / YY"> '
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


# ------------------------------------------------------------------ portal


def _portal_session(ctx: Ctx, session_id: str) -> dict[str, Any]:
    session = ctx.store.get("billing_portal.session", session_id)
    if session is None:
        raise StripeError(404, "This billing portal session does not exist.")
    return session


def _switch_options(ctx: Ctx, sub: dict[str, Any]) -> list[dict[str, Any]]:
    items = billing.items_of(ctx.store, sub)
    if not items:
        return []
    current = billing.price_of(ctx, items[0])
    return [
        p
        for p in ctx.store.all("price")
        if p["product"] == current["product"]
        and p["active"]
        and p["type"] == "recurring"
        and p["id"] != current["id"]
        and p["currency"] == current["currency"]
    ]


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
    subs = [
        s
        for s in ctx.store.all("subscription")
        if s["customer"] == session["customer"] and s["status"] not in billing.ENDED
    ]
    if not subs:
        parts.append('<p id="no_subscriptions">You have no active subscriptions.</p>')
    for sub in subs:
        sid = escape(sub["id"])
        items = billing.items_of(ctx.store, sub)
        price = billing.price_of(ctx, items[0]) if items else None
        name = billing.product_name(ctx, price) if price else ""
        _start, end = billing.current_period(ctx, sub)
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
        if sub["cancel_at"]:
            block.append(
                f'<p class="cancel_notice" id="cancel-notice-{sid}">Cancels on '
                f"{date(sub['cancel_at'])}</p>"
            )
            block.append(
                f'<form method="post" action="{action}" class="inline">'
                f'<input type="hidden" name="subscription" value="{sid}">'
                f'<button id="resume-{sid}" class="resume" name="action" value="resume" '
                'type="submit">Renew subscription</button></form>'
            )
        else:
            label = "Trial ends" if sub["status"] == "trialing" else "Renews on"
            block.append(f'<p class="renews">{label} {date(end)}</p>')
            block.append(
                f'<form method="post" action="{action}" class="inline">'
                f'<input type="hidden" name="subscription" value="{sid}">'
                f'<button id="cancel-{sid}" class="cancel" name="action" value="cancel" '
                'type="submit">Cancel subscription</button></form>'
            )
        options = _switch_options(ctx, sub)
        if options:
            opts = "".join(
                f'<option value="{escape(p["id"])}">{escape(_price_label(ctx, p))}</option>'
                for p in options
            )
            block.append(
                f'<form method="post" action="{action}">'
                f'<input type="hidden" name="action" value="switch">'
                f'<input type="hidden" name="subscription" value="{sid}">'
                f'<label for="price-{sid}">Switch plan</label> '
                f'<select id="price-{sid}" name="price">{opts}</select> '
                f'<button id="switch-{sid}" class="switch" type="submit">'
                "Update plan</button></form>"
            )
        block.append("</div>")
        parts.append("".join(block))
    invoices = [
        i
        for i in ctx.store.all("invoice")
        if i["customer"] == session["customer"] and i["status"] != "draft"
    ]
    if invoices:
        rows = "".join(
            f'<tr class="invoice"><td>{date(i["created"])}</td><td>{escape(i["number"] or "")}'
            f"</td><td>{escape(billing.money(i['total'], i['currency']))}</td>"
            f"<td>{escape(i['status'])}</td></tr>"
            for i in invoices
        )
        parts.append(f'<h2>Invoice history</h2><table id="invoices">{rows}</table>')
    if session.get("return_url"):
        parts.append(
            f'<p><a id="return" href="{escape(session["return_url"])}">Return to '
            "the merchant</a></p>"
        )
    return page("Billing portal", "\n".join(parts), status)


def portal_get(ctx: Ctx, request: Request, parts: list[str]) -> Response:
    return portal_page(ctx, _portal_session(ctx, parts[1]))


def portal_post(ctx: Ctx, request: Request, parts: list[str]) -> Response:
    session = _portal_session(ctx, parts[1])
    action = request.form.get("action", "")
    sub_id = request.form.get("subscription", "")
    subs = [
        s
        for s in ctx.store.all("subscription")
        if s["customer"] == session["customer"] and s["status"] not in billing.ENDED
    ]
    if not sub_id and len(subs) == 1:
        sub_id = subs[0]["id"]
    sub = next((s for s in subs if s["id"] == sub_id), None)
    if sub is None:
        return portal_page(ctx, session, "That subscription is not available.", 400)
    ctx.store.touch(sub)
    before = ctx.render(sub)
    if action == "cancel":
        billing.set_cancel_at_period_end(ctx, sub, True)
    elif action == "resume":
        billing.set_cancel_at_period_end(ctx, sub, False)
    elif action == "switch":
        price_id = request.form.get("price", "")
        allowed = {p["id"]: p for p in _switch_options(ctx, sub)}
        if price_id not in allowed:
            return portal_page(ctx, session, "That plan is not available.", 400)
        item = billing.items_of(ctx.store, sub)[0]
        billing.change_items(
            ctx,
            sub,
            [{"id": item["id"], "price": price_id}],
            "create_prorations",
            lambda pid, param: allowed[pid],
        )
    else:
        return portal_page(ctx, session, "Unknown action.", 400)
    ctx.emit_updated("customer.subscription.updated", sub, before)
    flow = session.get("flow") or {}
    after = flow.get("after_completion") or {}
    if after.get("type") == "redirect" and after.get("redirect"):
        return redirect(after["redirect"]["return_url"])
    return redirect(f"/portal/{session['id']}")


# ----------------------------------------------------------------- invoice


def _invoice(ctx: Ctx, invoice_id: str) -> dict[str, Any]:
    invoice = ctx.store.get("invoice", invoice_id)
    if invoice is None or invoice["status"] == "draft":
        raise StripeError(404, "This invoice does not exist.")
    return invoice


def invoice_page(
    ctx: Ctx, invoice: dict[str, Any], error: str | None = None, status: int = 200
) -> Response:
    rows = "".join(
        f'<tr class="line"><td>{escape(line["description"] or "")}</td>'
        f"<td>{escape(billing.money(line['amount'], line['currency']))}</td></tr>"
        for line in invoice["lines"]["data"]
    )
    parts = [
        f'<p id="number">Invoice {escape(invoice["number"] or invoice["id"])}</p>',
        f'<table id="lines">{rows}</table>',
        f'<p id="amount_due">Amount due: '
        f"{escape(billing.money(invoice['amount_remaining'], invoice['currency']))}</p>",
        f'<p>Status: <span id="status">{escape(invoice["status"])}</span></p>',
        error_html(error),
    ]
    if invoice["status"] == "open" and invoice["amount_remaining"] > 0:
        parts.append(
            f'<form id="payment-form" method="post" '
            f'action="{escape("/invoice/" + invoice["id"])}">'
            '<label for="card_number">Card number</label> '
            '<input id="card_number" name="card_number" required> '
            '<button id="submit" type="submit">Pay invoice</button></form>'
        )
    return page("Invoice", "\n".join(parts), status)


def invoice_get(ctx: Ctx, request: Request, parts: list[str]) -> Response:
    return invoice_page(ctx, _invoice(ctx, parts[1]))


def invoice_post(ctx: Ctx, request: Request, parts: list[str]) -> Response:
    invoice = _invoice(ctx, parts[1])
    if invoice["status"] != "open":
        return invoice_page(
            ctx, invoice, f"This invoice is {invoice['status']}; it cannot be paid.", 400
        )
    card = cards.lookup(request.form.get("card_number", ""))
    if card is None:
        return invoice_page(ctx, invoice, cards.INVALID_NUMBER, 400)
    if card.behavior in ("decline", "fail_later"):
        return invoice_page(ctx, invoice, cards.DECLINED, 402)
    pm = new_payment_method(ctx, card, created=ctx.now_for(invoice["customer"]))
    pm["customer"] = invoice["customer"]
    ctx.emit("payment_method.attached", pm)
    if not pay_invoice(ctx, invoice, pm["id"]):
        return invoice_page(ctx, invoice, cards.DECLINED, 402)
    return redirect(f"/invoice/{invoice['id']}")


def invoice_pdf(ctx: Ctx, request: Request, parts: list[str]) -> Response:
    invoice = _invoice(ctx, parts[1])
    lines = [f"Invoice {invoice['number']}", f"Status: {invoice['status']}", ""]
    lines += [
        f"{line['description']}: {billing.money(line['amount'], line['currency'])}"
        for line in invoice["lines"]["data"]
    ]
    lines += ["", f"Total: {billing.money(invoice['total'], invoice['currency'])}"]
    return Response("\n".join(lines) + "\n", content_type="text/plain; charset=utf-8")


__all__ = ["complete_session", "handle_hosted"]
