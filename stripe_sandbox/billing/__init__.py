"""The billing engine: subscriptions and their items, invoices and payment
attempts, dunning, prorations, cancellation, and the scheduler that runs what
falls due in wall time or on a test clock.

Modules: ``constants`` (timing rules), ``items`` (items and rendering),
``invoicing`` (invoices and payments), ``lifecycle`` (subscription state
changes), ``schedule`` (due work, clock advances).
"""

from __future__ import annotations

from .constants import DAY, ENDED, HOUR, PAYMENT_RETRY_DAYS, TRIAL_WILL_END_BEFORE
from .invoicing import (
    attempt_payment,
    bill,
    build_invoice,
    finalize_invoice,
    has_unpaid,
    item_lines,
    mark_paid,
    mark_uncollectible,
    void_invoice,
)
from .items import (
    invoice_payments,
    items_of,
    money,
    new_item,
    price_of,
    product_name,
)
from .lifecycle import (
    bill_and_set_status,
    cancel_now,
    change_items,
    create_subscription,
    current_period,
    end_trial,
    end_trial_now,
    renew,
    restart_cycle,
    set_cancel_at_period_end,
)
from .schedule import advance_clock, due_actions, run_due, tick_wall

__all__ = [
    "DAY",
    "ENDED",
    "HOUR",
    "PAYMENT_RETRY_DAYS",
    "TRIAL_WILL_END_BEFORE",
    "advance_clock",
    "attempt_payment",
    "bill",
    "bill_and_set_status",
    "build_invoice",
    "cancel_now",
    "change_items",
    "create_subscription",
    "current_period",
    "due_actions",
    "end_trial",
    "end_trial_now",
    "finalize_invoice",
    "has_unpaid",
    "invoice_payments",
    "item_lines",
    "items_of",
    "mark_paid",
    "mark_uncollectible",
    "money",
    "new_item",
    "price_of",
    "product_name",
    "renew",
    "restart_cycle",
    "run_due",
    "set_cancel_at_period_end",
    "tick_wall",
    "void_invoice",
]
