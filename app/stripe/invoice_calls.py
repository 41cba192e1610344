"""The gateway's calls for invoices and refunds (a part of `StripeGateway`, kept apart to keep
each module readable; `gateway.py` is still the one Stripe caller)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import stripe

from app.billing.errors import ProviderRejected
from app.stripe.plan_calls import idempotency_key

StripeDict = dict[str, Any]


class InvoiceCalls:
    client: stripe.StripeClient
    _call: Callable[..., StripeDict]

    # -- invoices ------------------------------------------------------------------------------

    def preview_upcoming_invoice(self, *, customer_id: str, subscription_id: str) -> StripeDict:
        """What the subscription's next renewal will charge (nothing is created)."""
        params: dict[str, Any] = {"customer": customer_id, "subscription": subscription_id}
        return self._call(lambda: self.client.v1.invoices.create_preview(params))  # type: ignore[arg-type]

    # -- refunds -------------------------------------------------------------------------------

    def invoice_payment_intent(self, invoice_id: str) -> str | None:
        """The payment intent that paid an invoice (its paid invoice payment), if any."""
        params: dict[str, Any] = {"invoice": invoice_id, "limit": 10}
        page = self._call(lambda: self.client.v1.invoice_payments.list(params))  # type: ignore[arg-type]
        for payment in page.get("data") or []:
            target = payment.get("payment") or {}
            if payment.get("status") == "paid" and target.get("type") == "payment_intent":
                return str(target["payment_intent"])
        return None

    def refund_payment(
        self, payment_id: str, *, amount: int | None = None, reason: str | None = None
    ) -> StripeDict:
        """Refund a payment intent (pi_...) or a charge (ch_...), in full or `amount` cents.
        The key is over the payment and the amount: a retried or repeated refund (two
        processes acting on one duplicate, an operator running the command twice) is
        replayed by Stripe, never paid out twice."""
        params: dict[str, Any] = {
            "charge" if payment_id.startswith(("ch_", "py_")) else "payment_intent": payment_id
        }
        if amount is not None:
            params["amount"] = amount
        if reason:
            params["reason"] = reason
        key = idempotency_key("refund", {"payment": payment_id, "amount": amount})
        options: dict[str, Any] = {"idempotency_key": key}
        return self._call(lambda: self.client.v1.refunds.create(params, options))  # type: ignore[arg-type]

    def refund_invoice(
        self, invoice_id: str, *, amount: int | None = None, reason: str | None = None
    ) -> StripeDict:
        """Refund what an invoice's payment took (in full, or `amount` cents)."""
        payment = self.invoice_payment_intent(invoice_id)
        if payment is None:
            raise ProviderRejected(
                "This invoice has no payment to refund.", code="invoice_not_paid"
            )
        return self.refund_payment(payment, amount=amount, reason=reason)
