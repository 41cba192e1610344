"""The one module that talks to Stripe.

Everything goes through `stripe.StripeClient` with a pinned API version, connect and read
timeouts, network retries and an idempotency key on every create (the SDK reuses it across its
retries; a key is derived from exactly the parameters it is sent with). A bulkhead bounds how many
Stripe calls run at once in this process, so a Stripe outage holds at most that many threads,
and a circuit breaker fails fast after repeated failures to reach Stripe; the other callers get
503 at once. Results come back as plain dicts so the billing rules treat
API reads and webhook payloads alike. Stripe's errors are translated into the business errors of
`app/billing/errors.py`, safe to show a user.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, cast

import stripe
from flask import current_app

from app.billing.errors import (
    CardDeclined,
    Conflict,
    ProviderRejected,
    ProviderUnavailable,
)
from app.db import transaction_open
from app.observability.stripe_calls import observed_call
from app.safe_text import for_log
from app.stripe.guards import Bulkhead, CircuitBreaker

log = logging.getLogger(__name__)

T = TypeVar("T")
StripeDict = dict[str, Any]


class TransactionOpen(RuntimeError):
    """A Stripe call was attempted while a database transaction is open: a bug (the call
    would hold locks, and SQLite's write lock, for a network round trip)."""


class InvalidSignature(Exception):
    """The webhook payload is not signed by Stripe with our secret (or the signature is stale)."""


def idempotency_key(purpose: str, params: dict[str, Any]) -> str:
    """A key for one intent that covers exactly the parameters sent: a retry with the same
    parameters replays the first answer; different parameters make a different key instead of
    an `IdempotencyError` that no retry could ever get past."""
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:24]
    return f"{purpose}-{digest}"


def _reached_stripe(exc: BaseException | None) -> bool:
    if isinstance(exc, stripe.APIConnectionError):
        return False
    return not (isinstance(exc, stripe.StripeError) and (exc.http_status or 0) >= 500)


def _refuse_future_timestamp(signature: str, tolerance: int) -> None:
    """The SDK refuses signatures older than `tolerance` but not ones dated in the future, which
    would never go stale (a captured request replayable for years). Allow the same skew ahead."""
    parts = [part.strip().partition("=") for part in signature.split(",")]
    try:
        stamps = [int(value) for name, _, value in parts if name == "t"]
    except ValueError:
        raise InvalidSignature("malformed timestamp") from None
    if any(stamp > time.time() + tolerance for stamp in stamps):
        raise InvalidSignature("signature timestamp is in the future")


def current_gateway() -> StripeGateway:
    """The gateway of the running app (built by the factory from its configuration)."""
    return cast(StripeGateway, current_app.extensions["stripe_gateway"])


class StripeGateway:
    def __init__(
        self,
        secret_key: str,
        *,
        api_version: str,
        api_base: str | None = None,
        max_network_retries: int = 2,
        connect_timeout: float = 3.0,
        read_timeout: float = 8.0,
        max_concurrent_calls: int = 4,
        call_queue_wait: float = 0.1,
        breaker_failures: int = 3,
        breaker_cooldown: float = 5.0,
    ) -> None:
        base_addresses: dict[str, str | None] = {"api": api_base} if api_base else {}
        self.client = stripe.StripeClient(
            secret_key,
            stripe_version=api_version,
            base_addresses=base_addresses,  # type: ignore[arg-type]
            max_network_retries=max_network_retries,
            http_client=stripe.RequestsClient(timeout=(connect_timeout, read_timeout)),
        )
        self.bulkhead = Bulkhead(max_concurrent_calls, call_queue_wait)
        self.breaker = CircuitBreaker(breaker_failures, breaker_cooldown)

    @classmethod
    def from_config(cls, config: Any) -> StripeGateway:
        return cls(
            config["STRIPE_SECRET_KEY"],
            api_version=config["STRIPE_API_VERSION"],
            api_base=config["STRIPE_API_BASE"] or None,
            max_network_retries=config["STRIPE_MAX_NETWORK_RETRIES"],
            connect_timeout=config["STRIPE_CONNECT_TIMEOUT"],
            read_timeout=config["STRIPE_READ_TIMEOUT"],
            max_concurrent_calls=config["STRIPE_MAX_CONCURRENT_CALLS"],
            call_queue_wait=config["STRIPE_CALL_QUEUE_WAIT"],
            breaker_failures=config["STRIPE_BREAKER_FAILURES"],
            breaker_cooldown=config["STRIPE_BREAKER_COOLDOWN"],
        )

    # -- customers ---------------------------------------------------------------------------

    def create_customer(self, *, user_id: str) -> StripeDict:
        """One customer per user, even when two requests race or an answer is lost: the
        parameters are the user id alone, so every attempt sends the same key and parameters
        and Stripe replays the first create. The email, which can change between attempts,
        is set by `update_customer_email`."""
        params: dict[str, Any] = {"metadata": {"userId": user_id}}
        options: dict[str, Any] = {"idempotency_key": idempotency_key("customer-for-user", params)}
        return self._call(lambda: self.client.v1.customers.create(params, options))  # type: ignore[arg-type]

    def update_customer_email(self, customer_id: str, email: str) -> StripeDict:
        params: dict[str, Any] = {"email": email}
        return self._call(lambda: self.client.v1.customers.update(customer_id, params))  # type: ignore[arg-type]

    # -- checkout ------------------------------------------------------------------------------

    def create_checkout_session(
        self,
        *,
        user_id: str,
        customer_id: str,
        price_id: str,
        success_url: str,
        cancel_url: str,
        metadata: dict[str, str],
        idempotency_key: str | None = None,
    ) -> StripeDict:
        params: dict[str, Any] = {
            "customer": customer_id,
            "client_reference_id": user_id,
            "mode": "subscription",
            "line_items": [{"price": price_id, "quantity": 1}],
            "success_url": success_url,
            "cancel_url": cancel_url,
            "metadata": {**metadata, "userId": user_id},
            "subscription_data": {"metadata": {"userId": user_id}},
            "allow_promotion_codes": True,
            "billing_address_collection": "auto",
        }
        options: dict[str, Any] = {}
        if idempotency_key:
            options["idempotency_key"] = idempotency_key
        return self._call(lambda: self.client.v1.checkout.sessions.create(params, options))  # type: ignore[arg-type]

    def retrieve_checkout_session(self, session_id: str) -> StripeDict:
        params: dict[str, Any] = {"expand": ["subscription"]}
        return self._call(
            lambda: self.client.v1.checkout.sessions.retrieve(session_id, params)  # type: ignore[arg-type]
        )

    # -- subscriptions -------------------------------------------------------------------------

    def list_open_checkout_sessions(self, customer_id: str) -> list[StripeDict]:
        params: dict[str, Any] = {"customer": customer_id, "status": "open", "limit": 100}
        page = self._call(lambda: self.client.v1.checkout.sessions.list(params))  # type: ignore[arg-type]
        return list(page.get("data") or [])

    def expire_checkout_session(self, session_id: str) -> StripeDict:
        return self._call(lambda: self.client.v1.checkout.sessions.expire(session_id))

    def retrieve_subscription(self, subscription_id: str) -> StripeDict:
        return self._call(lambda: self.client.v1.subscriptions.retrieve(subscription_id))

    def reread_subscription(self, subscription_id: str) -> StripeDict:
        """The one call allowed inside a transaction: re-reading a subscription whose row the
        transaction has locked, so that no webhook can write between this read and the write
        of its answer (the ordering rule's same-second case, and sync)."""
        return self._call(
            lambda: self.client.v1.subscriptions.retrieve(subscription_id), under_lock=True
        )

    def set_cancel_at_period_end(self, subscription_id: str, cancel: bool) -> StripeDict:
        params: dict[str, Any] = {"cancel_at_period_end": cancel}
        return self._call(
            lambda: self.client.v1.subscriptions.update(subscription_id, params)  # type: ignore[arg-type]
        )

    def cancel_subscription_now(
        self, subscription_id: str, *, prorate: bool = False, invoice_now: bool = False
    ) -> StripeDict:
        params: dict[str, Any] = {}
        if prorate:
            params["prorate"] = True
        if invoice_now:
            params["invoice_now"] = True
        return self._call(
            lambda: self.client.v1.subscriptions.cancel(subscription_id, params)  # type: ignore[arg-type]
        )

    def live_subscriptions(self, customer_id: str) -> list[StripeDict]:
        """The customer's subscriptions that are not ended (one list call)."""
        params: dict[str, Any] = {"customer": customer_id, "limit": 100}
        page = self._call(lambda: self.client.v1.subscriptions.list(params))  # type: ignore[arg-type]
        return list(page.get("data") or [])

    def list_subscriptions(self, *, customer_id: str | None = None) -> Iterator[StripeDict]:
        """Every subscription, canceled ones included, across all pages."""
        params: dict[str, Any] = {"status": "all", "limit": 100}
        if customer_id:
            params["customer"] = customer_id
        yield from self._paginate(self.client.v1.subscriptions.list, params)

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

    # -- portal --------------------------------------------------------------------------------

    def create_portal_session(self, *, customer_id: str, return_url: str) -> StripeDict:
        params: dict[str, Any] = {"customer": customer_id, "return_url": return_url}
        return self._call(lambda: self.client.v1.billing_portal.sessions.create(params))  # type: ignore[arg-type]

    # -- events and webhooks -------------------------------------------------------------------

    @staticmethod
    def verify_webhook(
        payload: bytes, signature: str | None, *, secret: str, tolerance: int = 300
    ) -> str:
        """Verify Stripe's signature over the raw body; the body as text (still to be read)."""
        if not signature or not secret:
            raise InvalidSignature("missing Stripe-Signature header or webhook secret")
        _refuse_future_timestamp(signature, tolerance)
        try:
            text = payload.decode("utf-8")
            stripe.WebhookSignature.verify_header(text, signature, secret, tolerance)
        except (stripe.SignatureVerificationError, UnicodeDecodeError, ValueError) as exc:
            raise InvalidSignature(str(exc)) from exc
        return text

    def list_events_after(self, created_after: int | None) -> list[StripeDict]:
        """Events newer than `created_after` (inclusive of that second), oldest first."""
        params: dict[str, Any] = {"limit": 100}
        if created_after is not None:
            params["created"] = {"gte": created_after}
        events = list(self._paginate(self.client.v1.events.list, params))
        events.reverse()
        return events

    # -- catalog (the plans table; seeding the sandbox) and endpoints -------------------------

    def retrieve_price(self, price_id: str) -> StripeDict:
        """A price with its product expanded (name), for the public plans table."""
        params: dict[str, Any] = {"expand": ["product"]}
        return self._call(lambda: self.client.v1.prices.retrieve(price_id, params))  # type: ignore[arg-type]

    def find_price_by_lookup_key(self, lookup_key: str) -> StripeDict | None:
        found = self.list_first_page("prices", {"lookup_keys": [lookup_key], "limit": 1})
        return found[0] if found else None

    def list_first_page(self, resource: str, params: dict[str, Any]) -> list[StripeDict]:
        return list(self._call(lambda: getattr(self.client.v1, resource).list(params))["data"])

    def create_product(self, *, name: str, description: str, product_id: str = "") -> StripeDict:
        params: dict[str, Any] = {"name": name, "description": description}
        params.update({"id": product_id} if product_id else {})
        return self._call(lambda: self.client.v1.products.create(params))  # type: ignore[arg-type]

    def create_recurring_price(
        self, *, product_id: str, unit_amount: int, interval: str, lookup_key: str
    ) -> StripeDict:
        params: dict[str, Any] = {
            "product": product_id,
            "currency": "usd",
            "unit_amount": unit_amount,
            "recurring": {"interval": interval},
            "lookup_key": lookup_key,
            "transfer_lookup_key": True,
        }
        return self._call(lambda: self.client.v1.prices.create(params))  # type: ignore[arg-type]

    def create_webhook_endpoint(
        self, *, url: str, enabled_events: list[str], api_version: str | None = None
    ) -> StripeDict:
        params: dict[str, Any] = {"url": url, "enabled_events": enabled_events}
        if api_version:
            params["api_version"] = api_version
        return self._call(lambda: self.client.v1.webhook_endpoints.create(params))  # type: ignore[arg-type]

    def delete_webhook_endpoint(self, endpoint_id: str) -> StripeDict:
        return self._call(lambda: self.client.v1.webhook_endpoints.delete(endpoint_id))

    # -- plumbing ------------------------------------------------------------------------------

    def _paginate(
        self, list_method: Callable[..., Any], params: dict[str, Any]
    ) -> Iterator[StripeDict]:
        operation = sys._getframe(1).f_code.co_name
        while True:
            page = self._call(lambda: list_method(dict(params)), operation=operation)
            data = page.get("data") or []
            yield from data
            if not page.get("has_more") or not data:
                return
            params["starting_after"] = data[-1]["id"]

    def _guarded(self, request: Callable[[], Any]) -> Any:
        self.breaker.check()

        def observed() -> Any:
            try:
                result = request()
            except BaseException as exc:
                self.breaker.record(_reached_stripe(exc))
                raise
            self.breaker.record(True)
            return result

        return self.bulkhead.run(observed)

    def _call(  # operation: the calling method's name, for logs and metrics
        self, request: Callable[[], Any], *, under_lock: bool = False, operation: str = ""
    ) -> StripeDict:
        operation = operation or sys._getframe(1).f_code.co_name
        if not under_lock and transaction_open():
            raise TransactionOpen(
                "end the transaction (outside_transaction()) before calling Stripe"
            )
        try:
            result = self._guarded(lambda: observed_call(request, operation))
        except stripe.IdempotencyError as exc:
            # A key reused with other parameters: retrying the same request can never succeed.
            log.error("Stripe refused an idempotency key: %s", for_log(exc.user_message))
            raise Conflict(
                "This request conflicts with an earlier one and was not carried out.",
                code="idempotency_conflict",
            ) from exc
        except stripe.CardError as exc:
            # One documented code for every card problem; Stripe's own reason rides along.
            reason = getattr(exc, "decline_code", None) or exc.code
            raise CardDeclined(
                exc.user_message or "Your card was declined.",
                code="card_declined",
                details={"declineCode": reason} if reason else None,
            ) from exc
        except stripe.InvalidRequestError as exc:
            reason = for_log(exc.user_message), for_log(exc.code)
            log.warning("Stripe rejected a request: %s (code=%s)", *reason)
            rejected = ProviderRejected(
                "The payment provider rejected this request.",
                code="payment_provider_rejected",
                missing=exc.http_status == 404,
            )
            if exc.code:
                rejected.details["stripeCode"] = exc.code  # Stripe's own code rides along
            raise rejected from exc
        except (stripe.APIConnectionError, stripe.RateLimitError) as exc:
            log.error("Stripe unreachable: %s", type(exc).__name__)
            raise ProviderUnavailable(
                "The payment provider is unreachable. Try again shortly."
            ) from exc
        except stripe.StripeError as exc:
            # Authentication, permission and Stripe-side errors: our problem, not the user's.
            log.error("Stripe error %s: %s", type(exc).__name__, for_log(exc.user_message))
            raise ProviderUnavailable(
                "The payment provider could not handle this request."
            ) from exc
        # for_json: the SDK turns decimal strings (`unit_amount_decimal`) into Decimal; keep them
        # strings, as in webhook payloads, so API answers and events look the same everywhere.
        return result.to_dict(for_json=True) if hasattr(result, "to_dict") else dict(result)
