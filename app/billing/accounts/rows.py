"""A user and their subscriptions as plain objects: what the hot requests (GET
/api/subscription/<id>, /api/me, POST /api/usage/generations) read with one Core statement
instead of loading ORM rows into the session (`app/billing/accounts/store.py`).

The attributes carry the ORM models' names (app/models.py), so the billing rules read either
kind; the rows are read-only copies (a write goes through the ORM rows, `current_user()`)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime

from app.billing.statuses import StatusFacts
from app.models import Subscription, User


@dataclass(slots=True)
class MirroredFields:
    """The columns a user's summary mirrors from their deciding subscription, under the same
    names on both (as `MirroredColumns` in app/models.py)."""

    plan_interval: str | None
    current_period_start: int | None
    current_period_end: int | None
    cancel_at_period_end: bool
    cancel_at: int | None
    canceled_at: int | None
    trial_end: int | None
    quantity: int | None


@dataclass(slots=True)
class SubscriptionRow(MirroredFields, StatusFacts):
    """The columns of a subscription that the rules and the replies read."""

    id: str
    customer_id: str | None
    status: str | None
    price_id: str | None
    past_due_since: int | None
    stripe_created: int | None
    trial_will_end_at: int | None


@dataclass(slots=True)
class UserRow(MirroredFields):
    """The columns of a user that the rules and the replies read, and their subscriptions."""

    id: str
    email: str | None
    name: str | None
    stripe_customer_id: str | None
    subscription_status: str
    subscription_tier: str
    generations_used: int
    generations_limit: int | None
    usage_period_start: int | None
    usage_period_end: int | None
    created_at: datetime
    # The rest of the summary mirroring the deciding subscription (subscriptions/mirror.py).
    stripe_subscription_id: str | None
    stripe_price_id: str | None
    # Dunning (app/billing/invoices/store.py): read with the user, no query of its own.
    payment_action: str | None
    payment_action_invoice: str | None
    payment_action_url: str | None
    payment_action_since: int | None
    stripe_customer_email: str | None
    credit_balance: int
    subscriptions: list[SubscriptionRow] = field(default_factory=list)


# The columns to read for each (the attributes above, in order, so a row's values construct
# the object positionally).
USER_FIELDS = tuple(f.name for f in fields(UserRow) if f.name != "subscriptions")
SUBSCRIPTION_FIELDS = tuple(f.name for f in fields(SubscriptionRow))

# Either kind, for the rules and replies that read both.
AnyUser = User | UserRow
AnySubscription = Subscription | SubscriptionRow
