"""Stripe's test card numbers and how each behaves."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TestCard:
    number: str
    brand: str
    # "ok": always succeeds; "decline": declined at checkout;
    # "authenticate": needs 3-D Secure at checkout, then succeeds off-session;
    # "fail_later": attaches fine, every charge fails;
    # "authenticate_always": 3-D Secure 2 on every payment: on-session it needs an action,
    # off-session (renewals) the charge fails with authentication_required.
    behavior: str

    @property
    def last4(self) -> str:
        return self.number[-4:]


CARDS: dict[str, TestCard] = {
    c.number: c
    for c in (
        TestCard("4242424242424242", "visa", "ok"),
        TestCard("4000000000000002", "visa", "decline"),
        TestCard("4000002500003155", "visa", "authenticate"),
        TestCard("4000000000000341", "visa", "fail_later"),
        TestCard("4000000000003220", "visa", "authenticate_always"),
        # Stripe's "authentication required on all transactions": renewals wait for the
        # customer (invoice.payment_action_required) instead of failing.
        TestCard("4000002760003184", "visa", "authenticate_every_time"),
        TestCard("4000000000009995", "visa", "decline"),
        TestCard("5555555555554444", "mastercard", "ok"),
        TestCard("378282246310005", "amex", "ok"),
    )
}

# Stripe's test PaymentMethod ids usable directly in API calls
MAGIC_PAYMENT_METHODS: dict[str, str] = {
    "pm_card_visa": "4242424242424242",
    "pm_card_mastercard": "5555555555554444",
    "pm_card_amex": "378282246310005",
    "pm_card_chargeDeclined": "4000000000000002",
    "pm_card_chargeDeclinedInsufficientFunds": "4000000000009995",
    "pm_card_authenticationRequired": "4000002500003155",
    "pm_card_threeDSecure2Required": "4000000000003220",
    "pm_card_chargeCustomerFail": "4000000000000341",
}

TEST_TOKENS: dict[str, str] = {
    "tok_visa": "4242424242424242",
    "tok_mastercard": "5555555555554444",
    "tok_amex": "378282246310005",
    "tok_chargeDeclined": "4000000000000002",
    "tok_chargeDeclinedInsufficientFunds": "4000000000009995",
    "tok_chargeCustomerFail": "4000000000000341",
    "tok_threeDSecure2Required": "4000000000003220",
}

DECLINED = "Your card was declined."
INVALID_NUMBER = "Your card number is invalid."
AUTH_FAILED = (
    "We are unable to authenticate your payment method. Please choose a different "
    "payment method and try again."
)


# The behaviors whose cards ask the customer for 3-D Secure when they are on the page.
AUTHENTICATING = frozenset({"authenticate", "authenticate_always", "authenticate_every_time"})


def normalize(number: str) -> str:
    return "".join(ch for ch in number if ch not in " -")


def lookup(number: str) -> TestCard | None:
    return CARDS.get(normalize(number))


def charge_succeeds(behavior: str) -> bool:
    """Whether an (off-session) charge on a saved card with this behavior succeeds."""
    return behavior in ("ok", "authenticate")


def needs_action(behavior: str, off_session: bool) -> bool:
    """Whether a charge must wait for the customer to authenticate (3-D Secure)."""
    if behavior == "authenticate_always":
        return not off_session
    if behavior == "authenticate_every_time":
        return True
    return behavior == "authenticate" and not off_session


def decline_code(behavior: str) -> str:
    return "authentication_required" if behavior == "authenticate_always" else "generic_decline"


def magic_card(pm_or_token: str) -> TestCard | None:
    """The test card behind ``pm_card_*`` / ``tok_*``, if it is one."""
    number = MAGIC_PAYMENT_METHODS.get(pm_or_token) or TEST_TOKENS.get(pm_or_token)
    return lookup(number) if number else None
