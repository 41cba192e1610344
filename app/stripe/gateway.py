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
from app.stripe.account_calls import AccountCalls
from app.stripe.guards import Bulkhead, CircuitBreaker
from app.stripe.invoice_calls import InvoiceCalls
from app.stripe.plan_calls import CheckoutTrial as CheckoutTrial
from app.stripe.plan_calls import PlanCalls, idempotency_key

log = logging.getLogger(__name__)

T = TypeVar("T")
StripeDict = dict[str, Any]


class TransactionOpen(RuntimeError):
    """A Stripe call was attempted while a database transaction is open: a bug (the call
    would hold locks, and SQLite's write lock, for a network round trip)."""


class InvalidSignature(Exception):
    """The webhook payload is not signed by Stripe with our secret (or the signature is stale)."""


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


class StripeGateway(PlanCalls, InvoiceCalls, AccountCalls):
    def __init__(
        self,
        secret_key: str,
        *,
        api_version: str,
        api_base: str | None = None,
        max_network_retries: int = 2,
        connect_timeout: float = 3.0,
        read_timeout: float = 8.0,
        max_concurrent_calls: int = 3,
        call_queue_wait: float = 1.0,
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
        quantity: int = 1,
        trial: CheckoutTrial | None = None,
        promotion_code_id: str | None = None,
        tax: dict[str, Any] | None = None,
    ) -> StripeDict:
        """`tax`: the Stripe Tax / address / tax-id parameters the configuration asks for
        (app/billing/invoices/tax.py), replacing the default address collection."""
        subscription_data: dict[str, Any] = {"metadata": {"userId": user_id}}
        params: dict[str, Any] = {
            "customer": customer_id,
            "client_reference_id": user_id,
            "mode": "subscription",
            "line_items": [{"price": price_id, "quantity": quantity}],
            "success_url": success_url,
            "cancel_url": cancel_url,
            "metadata": {**metadata, "userId": user_id},
            "subscription_data": subscription_data,
            "billing_address_collection": "auto",
            **(tax or {}),
        }
        if promotion_code_id:
            # Stripe refuses discounts together with allow_promotion_codes.
            params["discounts"] = [{"promotion_code": promotion_code_id}]
        else:
            params["allow_promotion_codes"] = True
        if trial is not None:
            subscription_data["trial_period_days"] = trial.days
            if not trial.requires_card:
                params["payment_method_collection"] = "if_required"
                subscription_data["trial_settings"] = {
                    "end_behavior": {"missing_payment_method": trial.end_behavior}
                }
        options: dict[str, Any] = {}
        if idempotency_key:
            options["idempotency_key"] = idempotency_key
        return self._call(lambda: self.client.v1.checkout.sessions.create(params, options))  # type: ignore[arg-type]

    def create_credit_pack_session(
        self,
        *,
        user_id: str,
        customer_id: str,
        price_id: str,
        generations: int,
        success_url: str,
        cancel_url: str,
    ) -> StripeDict:
        """A one-time payment (mode=payment) for a credit pack; checkout.session.completed
        fulfils it (metadata says how many generations)."""
        metadata = {"userId": user_id, "creditPackGenerations": str(generations)}
        params: dict[str, Any] = {
            "customer": customer_id,
            "client_reference_id": user_id,
            "mode": "payment",
            "line_items": [{"price": price_id, "quantity": 1}],
            "success_url": success_url,
            "cancel_url": cancel_url,
            "metadata": metadata,
            "payment_intent_data": {"metadata": metadata},
        }
        return self._call(lambda: self.client.v1.checkout.sessions.create(params))  # type: ignore[arg-type]

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

    def cancel_subscription_now(self, subscription_id: str) -> StripeDict:
        return self._call(lambda: self.client.v1.subscriptions.cancel(subscription_id))

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
