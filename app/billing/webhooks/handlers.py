"""Every Stripe event type we subscribe to, the handler that applies it, and why we need it.

A handler gets the event's object, the event's `created` (the ordering rule's clock) and the
gateway (for the one Stripe call an apply may make: a re-read when two changes of a
subscription share a second). Handlers run in the applier's transaction and are idempotent:
an event applied twice (a replay) changes nothing the second time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from app import audit
from app.billing.credits.store import fulfil_credit_pack
from app.billing.invoices.store import store_invoice
from app.billing.plans_table import mark_catalog_changed
from app.billing.subscriptions.batch_store import apply_subscription_events
from app.billing.subscriptions.checkout import fulfil_checkout_session
from app.billing.subscriptions.store import apply_subscription, note_trial_will_end
from app.billing.time import now_ms
from app.billing.usage.periods import reset_usage_for_renewal
from app.stripe.gateway import StripeDict, StripeGateway
from app.stripe.objects import object_id

log = logging.getLogger(__name__)

Handler = Callable[[StripeDict, int, StripeGateway], None]


def _on_checkout_completed(session: StripeDict, created: int, gateway: StripeGateway) -> None:
    if session.get("mode") == "subscription":
        fulfil_checkout_session(session)
    elif session.get("mode") == "payment":
        fulfil_credit_pack(session)  # once per session, however often the event comes


def _on_checkout_expired(session: StripeDict, created: int, gateway: StripeGateway) -> None:
    # Nothing to change in our tables; who let which session lapse goes to the audit log.
    owner = session.get("client_reference_id")
    audit.record(
        "checkout.expired",
        "ok",
        user_id=owner if isinstance(owner, str) else None,
        stripe_object=str(session.get("id")),
    )


def _on_subscription_changed(
    subscription: StripeDict, created: int, gateway: StripeGateway
) -> None:
    apply_subscription(subscription, event_created=created, reread=gateway.reread_subscription)


def _on_trial_will_end(subscription: StripeDict, created: int, gateway: StripeGateway) -> None:
    # The state as any subscription event (ordering rules apply), then the warning itself.
    _on_subscription_changed(subscription, created, gateway)
    if isinstance(subscription.get("id"), str):
        note_trial_will_end(subscription["id"], created * 1000)


def _on_invoice_changed(invoice: StripeDict, created: int, gateway: StripeGateway) -> None:
    store_invoice(invoice, created)


def _on_invoice_paid(invoice: StripeDict, created: int, gateway: StripeGateway) -> None:
    store_invoice(invoice, created)  # clears the action about this invoice
    reset_usage_for_renewal(invoice)


def _on_invoice_payment_failed(invoice: StripeDict, created: int, gateway: StripeGateway) -> None:
    log.warning(
        "payment failed: invoice=%s customer=%s attempt=%s",
        invoice.get("id"),
        object_id(invoice.get("customer")),
        invoice.get("attempt_count"),
    )
    store_invoice(invoice, created, action="fix_payment")


def _on_invoice_action_required(invoice: StripeDict, created: int, gateway: StripeGateway) -> None:
    store_invoice(invoice, created, action="confirm_payment")


def _on_catalog_changed(obj: StripeDict, created: int, gateway: StripeGateway) -> None:
    # The plans table (GET /api/plans) is re-read from Stripe on its next request.
    mark_catalog_changed(now_ms())


CATALOG_EVENT_TYPES = tuple(
    f"{kind}.{change}"
    for kind in ("price", "product")
    for change in ("created", "updated", "deleted")
)

INVOICE_EVENT_TYPES = (
    "invoice.finalized",
    "invoice.updated",
    "invoice.voided",
    "invoice.marked_uncollectible",
)

# Each event type we subscribe to, its handler, and why we need it.
HANDLERS: dict[str, tuple[Handler, str]] = {
    "checkout.session.completed": (
        _on_checkout_completed,
        "links the buyer to their customer and subscription id (client_reference_id); a paid"
        " credit pack adds its generations",
    ),
    "checkout.session.expired": (
        _on_checkout_expired,
        "audit log only: whose checkout session lapsed",
    ),
    "customer.subscription.created": (
        _on_subscription_changed,
        "the subscription's first state (often incomplete, before payment)",
    ),
    "customer.subscription.updated": (
        _on_subscription_changed,
        "every state change: paid, past_due, cancel scheduled or undone, price, renewal period",
    ),
    "customer.subscription.deleted": (_on_subscription_changed, "the subscription ended"),
    "customer.subscription.paused": (_on_subscription_changed, "paid access stops while paused"),
    "customer.subscription.resumed": (_on_subscription_changed, "paid access is back"),
    "customer.subscription.trial_will_end": (
        _on_trial_will_end,
        "the trial ends in 3 days: /api/me shows trialWillEndAt (the front end's banner)",
    ),
    "invoice.paid": (
        _on_invoice_paid,
        "a renewal was paid: usage starts again from 0; the invoice is kept, its action cleared",
    ),
    "invoice.payment_failed": (
        _on_invoice_payment_failed,
        "the invoice is kept and the user gets a fix_payment action in /api/me",
    ),
    "invoice.payment_action_required": (
        _on_invoice_action_required,
        "3-D Secure on a renewal: the user gets a confirm_payment action in /api/me",
    ),
    **dict.fromkeys(
        INVOICE_EVENT_TYPES,
        (_on_invoice_changed, "GET /api/invoices is read from our copy, kept current here"),
    ),
    **dict.fromkeys(
        CATALOG_EVENT_TYPES,
        (_on_catalog_changed, "the plans table (GET /api/plans) is read from Stripe again"),
    ),
}

# The types whose handler only writes the subscription's state (and its owner's summary): a
# batch of them is applied together (`apply_state_events`), whatever their number.
STATE_EVENT_TYPES = frozenset(
    kind for kind, (handler, _why) in HANDLERS.items() if handler is _on_subscription_changed
)


def apply_state_events(events: Sequence[tuple[StripeDict, int]], gateway: StripeGateway) -> None:
    """Events of `STATE_EVENT_TYPES` (object, `created`; oldest first), applied as one by one
    would be: the newest state of each subscription, in a few statements for the lot."""
    apply_subscription_events(events, gateway.reread_subscription)


# invoice.payment_succeeded is not subscribed: invoice.paid (which also covers invoices paid
# out of band) is what renewals act on, and subscribing to both would only record duplicates.
HANDLED_EVENT_TYPES = sorted(HANDLERS)
