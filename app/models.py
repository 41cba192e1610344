"""Database tables.

Times that come from Stripe are stored as BIGINT milliseconds since the epoch, the API's unit.
Times we stamp ourselves are timezone-aware datetimes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.billing.statuses import StatusFacts
from app.billing.time import ms_from_datetime
from app.extensions import db


def utcnow() -> datetime:
    return datetime.now(UTC)


class MirroredColumns:
    """The subscription columns a user row mirrors under the same names, so readers of `users`
    need no join; declared once here for both tables. Which columns are mirrored, and under
    which names, is `app/billing/subscriptions/mirror.py`."""

    plan_interval: Mapped[str | None] = mapped_column(String(20))
    current_period_start: Mapped[int | None] = mapped_column(BigInteger)
    current_period_end: Mapped[int | None] = mapped_column(BigInteger)
    cancel_at_period_end: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    cancel_at: Mapped[int | None] = mapped_column(BigInteger)
    canceled_at: Mapped[int | None] = mapped_column(BigInteger)
    trial_end: Mapped[int | None] = mapped_column(BigInteger)
    # Seats: the first item's quantity (entitlements scale with it).
    quantity: Mapped[int | None] = mapped_column(Integer)


class User(MirroredColumns, db.Model):  # type: ignore[name-defined]
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    # Not unique: identity is the token's `sub`; an email can move between accounts at the IdP.
    email: Mapped[str | None] = mapped_column(String(255), index=True)
    name: Mapped[str | None] = mapped_column(String(255))

    stripe_customer_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(255))
    subscription_status: Mapped[str] = mapped_column(
        String(50), default="free", server_default="free"
    )
    subscription_tier: Mapped[str] = mapped_column(
        String(50), default="free", server_default="free"
    )
    stripe_price_id: Mapped[str | None] = mapped_column(String(255))

    generations_used: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # A cache of the plan's limit, written when the state changes (None = unlimited); the
    # limit actually enforced is computed at request time (app/billing/usage/entitlements.py).
    generations_limit: Mapped[int | None] = mapped_column(Integer, default=10, server_default="10")
    # The usage period `generations_used` counts in, ms since the epoch like Stripe's periods
    # (a paid plan's period is the subscription's; the free plan's is a month from sign-up).
    usage_period_start: Mapped[int | None] = mapped_column(BigInteger)
    usage_period_end: Mapped[int | None] = mapped_column(BigInteger)

    # What the user must do about a payment (dunning): "fix_payment" (a renewal's charge
    # failed) or "confirm_payment" (the bank asks for 3-D Secure), the invoice to pay and its
    # hosted page, since when (ms). Kept on the row so /api/me reads it with the user.
    payment_action: Mapped[str | None] = mapped_column(String(20))
    payment_action_invoice: Mapped[str | None] = mapped_column(String(255))
    payment_action_url: Mapped[str | None] = mapped_column(Text)
    payment_action_since: Mapped[int | None] = mapped_column(BigInteger)
    # The email last sent to the Stripe customer: a sign-in with another one updates it once.
    stripe_customer_email: Mapped[str | None] = mapped_column(String(255))
    # Generations bought in credit packs, spent once the plan's quota for the period is used
    # up; they do not expire with the period (app/billing/credits).
    credit_balance: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    # Loaded with the user by `login_required` (one statement for a read); writers query
    # `current_subscription` instead, under their transaction.
    subscriptions: Mapped[list[Subscription]] = relationship(viewonly=True)

    __table_args__ = (
        Index("idx_users_stripe_customer", "stripe_customer_id"),
        Index("idx_users_subscription", "stripe_subscription_id"),
    )


class Subscription(StatusFacts, MirroredColumns, db.Model):  # type: ignore[name-defined]
    """Our copy of each Stripe subscription, one row per subscription id.

    `last_event_created` is the Stripe `created` time of the newest event applied to this row:
    an event that is not newer than it may carry a stale view and is never applied blindly.
    """

    __tablename__ = "subscriptions"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    user_id: Mapped[str | None] = mapped_column(
        String(255), ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    customer_id: Mapped[str | None] = mapped_column(String(255), index=True)
    status: Mapped[str | None] = mapped_column(String(50))
    price_id: Mapped[str | None] = mapped_column(String(255))
    ended_at: Mapped[int | None] = mapped_column(BigInteger)
    # When the current past_due spell began (ms); the grace policy counts its days from here.
    past_due_since: Mapped[int | None] = mapped_column(BigInteger)
    # When Stripe's customer.subscription.trial_will_end came for the current trial (ms); the
    # front end shows "your trial ends soon" from it.
    trial_will_end_at: Mapped[int | None] = mapped_column(BigInteger)
    stripe_created: Mapped[int | None] = mapped_column(BigInteger)
    last_event_created: Mapped[int | None] = mapped_column(BigInteger)
    # When the stored state last changed (a write that changes nothing leaves it alone).
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class WebhookEvent(db.Model):  # type: ignore[name-defined]
    __tablename__ = "webhook_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    processed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # json, not jsonb: written and read whole, never queried inside (migration 0011).
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON())
    stripe_created: Mapped[int | None] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    # The body as received, kept when `data` had to be made storable (NUL, lone surrogates)
    # or the event could not be applied: replay and inspection see exactly what Stripe sent.
    raw_body: Mapped[str | None] = mapped_column(Text)
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When a failed apply is tried again (NULL: as soon as an applier gets to it).
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Set when the event is no longer tried (malformed, or it kept failing): replay resumes it.
    parked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When we received (recorded) it: the apply lag is measured from here.
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )

    @property
    def is_parked(self) -> bool:
        return not self.processed and self.parked_at is not None

    __table_args__ = (
        Index("idx_webhook_events_processed", "processed", "created_at"),
        # The applier's queue: only the pending rows, in the order they are claimed (all of
        # it: a claim walks the index with no sort, see store.claim_ready).
        Index(
            "idx_webhook_events_pending",
            "stripe_created",
            "created_at",
            "id",
            postgresql_where=text("processed = false AND parked_at IS NULL"),
            sqlite_where=text("processed = 0 AND parked_at IS NULL"),
        ),
    )


class Invoice(db.Model):  # type: ignore[name-defined]
    """Our copy of each Stripe invoice, kept from invoice.* webhooks (GET /api/invoices reads
    it: no Stripe call per page load). Amounts in the currency's smallest unit."""

    __tablename__ = "invoices"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    user_id: Mapped[str | None] = mapped_column(
        String(255), ForeignKey("users.id", ondelete="SET NULL")
    )
    customer_id: Mapped[str | None] = mapped_column(String(255))
    subscription_id: Mapped[str | None] = mapped_column(String(255))
    number: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str | None] = mapped_column(String(50))
    billing_reason: Mapped[str | None] = mapped_column(String(50))
    currency: Mapped[str | None] = mapped_column(String(10))
    amount_due: Mapped[int | None] = mapped_column(BigInteger)
    amount_paid: Mapped[int | None] = mapped_column(BigInteger)
    amount_tax: Mapped[int | None] = mapped_column(BigInteger)
    total: Mapped[int | None] = mapped_column(BigInteger)
    hosted_invoice_url: Mapped[str | None] = mapped_column(Text)
    invoice_pdf: Mapped[str | None] = mapped_column(Text)
    period_start: Mapped[int | None] = mapped_column(BigInteger)
    period_end: Mapped[int | None] = mapped_column(BigInteger)
    stripe_created: Mapped[int | None] = mapped_column(BigInteger)
    # The newest event applied (s): an older one arriving late changes nothing.
    last_event_created: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow, server_default=func.now()
    )

    __table_args__ = (
        Index("ix_invoices_user_created", "user_id", "stripe_created"),
        Index("ix_invoices_customer_id", "customer_id"),
    )


class CreditPurchase(db.Model):  # type: ignore[name-defined]
    """One paid credit pack per Checkout session: the key that makes fulfilment idempotent."""

    __tablename__ = "credit_purchases"

    session_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(255))
    generations: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )


class SyncState(db.Model):  # type: ignore[name-defined]
    """Small key/value store for operational cursors (e.g. the last Stripe event synced)."""

    __tablename__ = "sync_state"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class UsageLedgerEntry(db.Model):  # type: ignore[name-defined]
    """Every change to a user's usage counter, so each number can be explained.

    `kind` "consume" is one POST /api/usage/generations (`result` granted or refused, replayed
    for a repeated idempotency key); "reset" is a new period starting (`count` = what was
    cleared, `reason` renewal, free_period or plan_change)."""

    __tablename__ = "usage_ledger"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    user_id: Mapped[str] = mapped_column(
        String(255), ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    kind: Mapped[str] = mapped_column(String(20))
    count: Mapped[int] = mapped_column(Integer)
    result: Mapped[str] = mapped_column(String(20))
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    reason: Mapped[str | None] = mapped_column(String(50))
    tier: Mapped[str | None] = mapped_column(String(50))
    generations_used: Mapped[int | None] = mapped_column(Integer)  # the counter afterwards
    generations_limit: Mapped[int | None] = mapped_column(Integer)  # the limit applied
    period_start: Mapped[int | None] = mapped_column(BigInteger)
    period_end: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )

    @property
    def created_at_ms(self) -> int:
        return ms_from_datetime(self.created_at)

    __table_args__ = (
        UniqueConstraint("user_id", "idempotency_key", name="uq_usage_ledger_user_key"),
        Index("idx_usage_ledger_user_period", "user_id", "period_start"),
    )


class AuditEntry(db.Model):  # type: ignore[name-defined]
    """Who did what to which Stripe object, with what outcome, when (app/audit.py writes it).

    Never tokens, secrets or card data: ids, an action name, an outcome code, a short detail."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )
    action: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str | None] = mapped_column(String(255))
    ip: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(64))
    stripe_object: Mapped[str | None] = mapped_column(String(255))
    detail: Mapped[str | None] = mapped_column(String(500))

    __table_args__ = (
        Index("idx_audit_log_user_at", "user_id", "at"),
        Index("idx_audit_log_at", "at"),
    )


class CheckoutClaim(db.Model):  # type: ignore[name-defined]
    """The one checkout a user may have under way (issue 18): the request holding `token` is
    making it (Stripe calls, no lock held meanwhile); once made, its session is handed back to
    repeated requests for the same price, so a double click can't open two payable sessions.
    The row is locked (FOR UPDATE) to claim it: per-user serialisation on both databases."""

    __tablename__ = "checkout_claims"

    user_id: Mapped[str] = mapped_column(
        String(255), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    token: Mapped[str | None] = mapped_column(String(64))  # None: nobody is making one
    price_id: Mapped[str | None] = mapped_column(String(255))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    session_id: Mapped[str | None] = mapped_column(String(255))
    session_url: Mapped[str | None] = mapped_column(Text)
    customer_id: Mapped[str | None] = mapped_column(String(255))
    made_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# -- Sign in with GitHub (app/signin/) ----------------------------------------------------------


class SignInAttempt(db.Model):  # type: ignore[name-defined]
    """A GitHub sign-in between its start and its callback: used once (deleted when the
    callback comes), bound to the browser that started it, gone after `expires_at`.

    Only digests of the state and of the browser's binding cookie are kept; the PKCE verifier
    is needed in clear for the token exchange (it is useless without GitHub's one-time code)."""

    __tablename__ = "signin_attempts"

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    browser_hash: Mapped[str] = mapped_column(String(64))
    code_verifier: Mapped[str] = mapped_column(String(128))
    return_to: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )


class AuthSession(db.Model):  # type: ignore[name-defined]
    """One sign-in of one browser (a refresh-token family): every refresh token it rotates
    through belongs to it, and revoking it (sign-out, a reused token) ends them all."""

    __tablename__ = "auth_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(255), index=True)
    # As GitHub reported them at sign-in; the access tokens carry email and name.
    login: Mapped[str | None] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_reason: Mapped[str | None] = mapped_column(String(32))


class RefreshToken(db.Model):  # type: ignore[name-defined]
    """A refresh token, by the SHA-256 of its value (the value itself is only ever in the
    browser's cookie). `rotated_at`: when it was exchanged for its successor; presenting it
    again after that (past the grace seconds) revokes its session."""

    __tablename__ = "refresh_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("auth_sessions.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )
    rotated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
