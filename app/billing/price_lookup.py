"""Prices configured by lookup key (STRIPE_PRICE_LOOKUP_KEY_*), resolved into price ids when a
request first needs them, never while booting.

Asking Stripe at start-up held every worker's first requests behind Stripe (gunicorn already
accepts connections then), and a lookup that failed was never tried again: the monthly plan
stayed "not offered" until a restart. Here a request that needs a price (a checkout, the plans
table) asks Stripe itself; if Stripe does not answer, that request is told 503
`payment_provider_unavailable` and the next attempt waits a back-off that doubles per failure
(PRICE_LOOKUP_RETRY_SECONDS up to PRICE_LOOKUP_RETRY_MAX_SECONDS), so a down Stripe is not asked
on every click; the first request after it returns heals the process. Requests that need no
price (/api/me, webhooks) never wait on this. A price id, when configured, wins over its key.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import MutableMapping
from typing import Any, Protocol

from app.billing.errors import BillingError, ProviderUnavailable

log = logging.getLogger(__name__)

LOOKUP_KEY_SETTINGS = {
    "STRIPE_PRICE_ID_MONTHLY": "STRIPE_PRICE_LOOKUP_KEY_MONTHLY",
    "STRIPE_PRICE_ID_YEARLY": "STRIPE_PRICE_LOOKUP_KEY_YEARLY",
}


class PriceFinder(Protocol):
    def find_price_by_lookup_key(self, lookup_key: str) -> dict[str, Any] | None: ...


class PriceLookup:
    """One per process: fills the price-id settings from their lookup keys on first need."""

    def __init__(self, *, retry_seconds: float, max_retry_seconds: float) -> None:
        self.retry_seconds = retry_seconds
        self.max_retry_seconds = max_retry_seconds
        self._lock = threading.Lock()
        self._failures = 0
        self._next_attempt = 0.0  # time.monotonic(); 0: try now

    @classmethod
    def from_config(cls, config: MutableMapping[str, Any]) -> PriceLookup:
        return cls(
            retry_seconds=config["PRICE_LOOKUP_RETRY_SECONDS"],
            max_retry_seconds=config["PRICE_LOOKUP_RETRY_MAX_SECONDS"],
        )

    @staticmethod
    def missing(config: MutableMapping[str, Any]) -> dict[str, str]:
        """The price-id settings still to fill, with the lookup key each is configured by."""
        return {
            id_setting: config[key_setting]
            for id_setting, key_setting in LOOKUP_KEY_SETTINGS.items()
            if not config.get(id_setting) and config.get(key_setting)
        }

    def ensure(self, config: MutableMapping[str, Any], stripe: PriceFinder) -> None:
        """Return once every configured lookup key has its price id in `config`; raise
        ProviderUnavailable (503, Retry-After) while Stripe can't say, without asking it again
        before the back-off has passed. One thread asks at a time; the others are answered
        from what it found (or told to retry) rather than piling onto a slow Stripe."""
        if not self.missing(config):  # the common case: resolved, or ids configured
            return
        # The first need waits for the first answer; after a failure nobody waits.
        if not self._lock.acquire(timeout=0 if self._next_attempt else -1):
            raise _unavailable()
        try:
            todo = self.missing(config)
            if not todo:
                return
            if time.monotonic() < self._next_attempt:
                raise _unavailable()
            for id_setting, lookup_key in todo.items():
                self._resolve(config, stripe, id_setting, lookup_key)
            self._failures, self._next_attempt = 0, 0.0
        finally:
            self._lock.release()

    def _resolve(
        self,
        config: MutableMapping[str, Any],
        stripe: PriceFinder,
        id_setting: str,
        lookup_key: str,
    ) -> None:
        key_setting = LOOKUP_KEY_SETTINGS[id_setting]
        try:
            price = stripe.find_price_by_lookup_key(lookup_key)
        except BillingError as exc:
            self._back_off(f"could not resolve {key_setting}={lookup_key}: {exc.message}")
            raise _unavailable() from exc
        if price is None:
            # A configuration mistake, or a price not made yet: keep asking, slowly.
            self._back_off(f"{key_setting}={lookup_key}: Stripe has no active price with that key")
            raise _unavailable()
        config[id_setting] = price["id"]
        log.info("%s=%s is price %s", key_setting, lookup_key, price["id"])

    def _back_off(self, reason: str) -> None:
        self._failures += 1
        wait = min(self.max_retry_seconds, self.retry_seconds * 2 ** (self._failures - 1))
        self._next_attempt = time.monotonic() + wait
        log.error("%s; asking again in %.1f s", reason, wait)


def _unavailable() -> ProviderUnavailable:
    return ProviderUnavailable(
        "Prices can't be read from the payment provider right now. Try again shortly."
    )
