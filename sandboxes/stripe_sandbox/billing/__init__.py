"""The engine: every operation on Stripe's objects, below the routes (``resources/``,
``hosted/``) and above ``context``/``store``/``wire``. It never imports a route.

Catalog and customers: ``catalog`` (products, prices), ``customers``.
Payments: ``payment_methods`` (test cards, magic ids, tokens), ``payment_intents`` (and
charges), ``setup_intents``.
Checkout and portal: ``checkout`` (sessions), ``checkout_completion`` (paying the page),
``portal`` (portal sessions and their actions).
Subscriptions: ``lifecycle`` (create, cancel), ``changes`` (items, prorations), ``cycle``
(trials, renewals, retries), ``subscription_requests`` (the API's operations), ``items``
(items, rendering), ``schedules`` (subscription schedules).
Invoices: ``lines``, ``invoicing`` (drafts, finalization, payment attempts, dunning),
``invoices`` (one-off invoices and invoice items), ``discounts`` (coupons, promotion codes).
Time: ``constants`` (timing rules), ``schedule`` (what falls due, test clock advances),
``clocks`` (test clocks). Expand: ``includes`` (fields present only when expanded).
"""

from __future__ import annotations

from .constants import DAY, ENDED
from .items import invoice_payments, items_of, money, price_of, product_name
from .lifecycle import current_period, set_cancel_at_period_end
from .schedule import advance_clock, tick_wall

__all__ = [
    "DAY",
    "ENDED",
    "advance_clock",
    "current_period",
    "invoice_payments",
    "items_of",
    "money",
    "price_of",
    "product_name",
    "set_cancel_at_period_end",
    "tick_wall",
]
