"""What can go wrong in the billing rules and at Stripe, in business terms.

The rules and the gateway raise these; `app/errors.py` maps each class to its HTTP status once.
`code` is the stable machine-readable reason; `message` is safe to show a user."""

from __future__ import annotations

from typing import Any


class BillingError(Exception):
    code = "bad_request"

    def __init__(
        self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details or {}


class InvalidRequest(BillingError):
    """The request asks for something we don't sell or allow (unknown price, foreign URL)."""


class NotFound(BillingError):
    """No such thing, or not the caller's (we never reveal which)."""

    code = "not_found"


class Conflict(BillingError):
    """The request contradicts the current state (already subscribed, already ended)."""

    code = "conflict"


class CardDeclined(BillingError):
    """Stripe declined the card; the message is Stripe's, meant for the buyer."""

    code = "card_declined"


class ProviderRejected(BillingError):
    """Stripe refused the request as invalid; `missing` when the object does not exist."""

    code = "payment_provider_rejected"

    def __init__(self, message: str, *, code: str | None = None, missing: bool = False) -> None:
        super().__init__(message, code=code)
        self.missing = missing


class ProviderUnavailable(BillingError):
    """Stripe could not be reached or could not answer; trying again later may work."""

    code = "payment_provider_unavailable"
