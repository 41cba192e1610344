"""The hosted invoice page (pay by card) and its plain-text "PDF"."""

from __future__ import annotations

from html import escape
from typing import Any

from werkzeug.wrappers import Request, Response

from .. import billing, cards
from ..billing.invoices import pay_invoice
from ..billing.payment_methods import new_payment_method
from ..context import Ctx
from ..errors import StripeError
from .html import error_html, page, redirect

NOTHING_TO_CONFIRM = "There is no payment waiting for authentication."


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
        _tax_ids_html(invoice),
        error_html(error),
    ]
    waiting = _waiting_payment_method(ctx, invoice)
    if waiting is not None:
        # A renewal waits for 3-D Secure (invoice.payment_action_required): confirm it here.
        parts.append(
            '<p id="authenticate-info">Your bank asks you to confirm this payment.</p>'
            f'<form method="post" action="{escape("/invoice/" + invoice["id"])}">'
            '<input type="hidden" name="action" value="authenticate">'
            '<button id="authenticate" type="submit">Confirm payment</button></form>'
        )
    if invoice["status"] == "open" and invoice["amount_remaining"] > 0:
        parts.append(
            f'<form id="payment-form" method="post" '
            f'action="{escape("/invoice/" + invoice["id"])}">'
            '<label for="card_number">Card number</label> '
            '<input id="card_number" name="card_number" required> '
            '<button id="submit" type="submit">Pay invoice</button></form>'
        )
    return page("Invoice", "\n".join(parts), status)


def _tax_ids_html(invoice: dict[str, Any]) -> str:
    tax_ids = invoice.get("customer_tax_ids") or []
    if not tax_ids:
        return ""
    shown = ", ".join(f"{t['value']} ({t['type']})" for t in tax_ids)
    return f'<p id="customer_tax_ids">Customer tax ID: {escape(shown)}</p>'


def _waiting_payment_method(ctx: Ctx, invoice: dict[str, Any]) -> str | None:
    """The payment method of the invoice's payment that waits for authentication, if any."""
    if invoice["status"] != "open":
        return None
    pi = ctx.store.get("payment_intent", invoice.get("_payment_intent") or "")
    if pi is None or pi["status"] != "requires_action":
        return None
    return pi.get("payment_method")


def invoice_get(ctx: Ctx, request: Request, parts: list[str]) -> Response:
    return invoice_page(ctx, _invoice(ctx, parts[1]))


def invoice_post(ctx: Ctx, request: Request, parts: list[str]) -> Response:
    invoice = _invoice(ctx, parts[1])
    if invoice["status"] != "open":
        return invoice_page(
            ctx, invoice, f"This invoice is {invoice['status']}; it cannot be paid.", 400
        )
    if request.form.get("action") == "authenticate":
        waiting = _waiting_payment_method(ctx, invoice)
        if waiting is None:
            return invoice_page(ctx, invoice, NOTHING_TO_CONFIRM, 400)
        ctx.authenticated.add(waiting)  # the customer is on the page and passed 3-D Secure
        if not pay_invoice(ctx, invoice, waiting):
            return invoice_page(ctx, invoice, cards.DECLINED, 402)
        return redirect(f"/invoice/{invoice['id']}")
    card = cards.lookup(request.form.get("card_number", ""))
    if card is None:
        return invoice_page(ctx, invoice, cards.INVALID_NUMBER, 400)
    if card.behavior in ("decline", "fail_later"):
        return invoice_page(ctx, invoice, cards.DECLINED, 402)
    pm = new_payment_method(ctx, card, created=ctx.now_for(invoice["customer"]))
    pm["customer"] = invoice["customer"]
    ctx.emit("payment_method.attached", pm)
    if card.behavior in cards.AUTHENTICATING:
        ctx.authenticated.add(pm["id"])  # the page itself is the 3-D Secure step
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
