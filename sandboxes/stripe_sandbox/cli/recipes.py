"""What ``trigger`` does for each event type: API calls that make the event happen, as the
fixtures of Stripe's CLI do (``${name:path}`` refers to an earlier step's answer).

A step is ``{"name", "method", "path", "params"}``; ``"expect_error": True`` when the
event comes from a refused call (a declined card answers 402); ``{"name", "page",
"form"}`` submits a hosted page as a browser would."""

from __future__ import annotations

from typing import Any

Step = dict[str, Any]

NOTE = "(created by stripe_sandbox trigger)"


def _post(step: str, path: str, /, **params: Any) -> Step:
    return {"name": step, "method": "POST", "path": path, "params": params}


def _delete(name: str, path: str) -> Step:
    return {"name": name, "method": "DELETE", "path": path, "params": {}}


PRODUCT = _post("product", "/v1/products", name="myproduct", description=NOTE)
PRICE = _post(
    "price",
    "/v1/prices",
    product="${product:id}",
    unit_amount=1500,
    currency="usd",
    recurring={"interval": "month"},
)
ONE_TIME_PRICE = _post(
    "price", "/v1/prices", product="${product:id}", unit_amount=2000, currency="usd"
)


def customer(pm: str | None = "pm_card_visa") -> Step:
    params: dict[str, Any] = {"description": NOTE, "email": "stripe_sandbox@example.com"}
    if pm:
        params.update(payment_method=pm, invoice_settings={"default_payment_method": pm})
    return _post("customer", "/v1/customers", **params)


def subscription(**extra: Any) -> Step:
    return _post(
        "subscription",
        "/v1/subscriptions",
        customer="${customer:id}",
        items=[{"price": "${price:id}"}],
        **extra,
    )


SUBSCRIBED = [PRODUCT, PRICE, customer(), subscription()]
SUB_PATH = "/v1/subscriptions/${subscription:id}"
PAUSED = [
    PRODUCT,
    PRICE,
    customer(None),
    subscription(
        trial_period_days=7, trial_settings={"end_behavior": {"missing_payment_method": "pause"}}
    ),
    _post("subscription_paused", SUB_PATH, trial_end="now"),
]
CHECKOUT_SESSION = _post(
    "checkout_session",
    "/v1/checkout/sessions",
    mode="subscription",
    line_items=[{"price": "${price:id}", "quantity": 1}],
    customer_email="stripe_sandbox@example.com",
    success_url="https://example.com/success?session_id={CHECKOUT_SESSION_ID}",
    cancel_url="https://example.com/cancel",
)
INVOICE = [
    customer(),
    _post(
        "invoiceitem", "/v1/invoiceitems", customer="${customer:id}", amount=2000, currency="usd"
    ),
    _post(
        "invoice",
        "/v1/invoices",
        customer="${customer:id}",
        description=NOTE,
        pending_invoice_items_behavior="include",
    ),
]
INVOICE_PATH = "/v1/invoices/${invoice:id}"
FINALIZED = [*INVOICE, _post("invoice_finalized", f"{INVOICE_PATH}/finalize")]
PAID = [*FINALIZED, _post("invoice_paid", f"{INVOICE_PATH}/pay")]


def payment_intent(pm: str | None = None, **extra: Any) -> Step:
    params: dict[str, Any] = {"amount": 2000, "currency": "usd", "description": NOTE, **extra}
    if pm:
        params.update(payment_method=pm, confirm=True)
    return _post("payment_intent", "/v1/payment_intents", **params)


def setup_intent(pm: str | None = None) -> list[Step]:
    if pm is None:
        return [_post("setup_intent", "/v1/setup_intents", payment_method_types=["card"])]
    params = {"customer": "${customer:id}", "payment_method": pm, "confirm": True}
    return [customer(None), _post("setup_intent", "/v1/setup_intents", **params)]


def failing(step: Step) -> Step:
    return {**step, "expect_error": True}


COUPON = _post("coupon", "/v1/coupons", percent_off=20, duration="once", name="20% off")
PROMOTION_CODE = _post(
    "promotion_code", "/v1/promotion_codes", promotion={"type": "coupon", "coupon": "${coupon:id}"}
)
SCHEDULE = _post(
    "subscription_schedule",
    "/v1/subscription_schedules",
    customer="${customer:id}",
    start_date="now",
    end_behavior="release",
    phases=[{"items": [{"price": "${price:id}", "quantity": 1}], "iterations": 12}],
)
PAGE_PATH = "/v1/payment_pages/${checkout_session:id}"
SCHEDULE_PATH = "/v1/subscription_schedules/${subscription_schedule:id}"
METADATA = {"metadata": {"trigger": "stripe_sandbox"}}

RECIPES: dict[str, list[Step]] = {
    # the types the app handles
    # As the Stripe CLI's recipe: the session, then its page confirmed with a card through
    # the private payment_pages API (what the hosted page does when the customer pays).
    "checkout.session.completed": [
        PRODUCT,
        PRICE,
        CHECKOUT_SESSION,
        {"name": "payment_page", "method": "GET", "path": PAGE_PATH, "params": {}},
        _post(
            "payment_method",
            "/v1/payment_methods",
            type="card",
            card={"token": "tok_visa"},
            billing_details={"email": "stripe@example.com"},
        ),
        _post(
            "payment_page_confirm",
            "/v1/payment_pages/${payment_page:id}/confirm",
            payment_method="${payment_method:id}",
        ),
    ],
    "customer.subscription.created": SUBSCRIBED,
    "customer.subscription.updated": [
        *SUBSCRIBED,
        _post("subscription_updated", SUB_PATH, **METADATA),
    ],
    "customer.subscription.deleted": [*SUBSCRIBED, _delete("subscription_deleted", SUB_PATH)],
    "customer.subscription.paused": PAUSED,
    "customer.subscription.resumed": [
        *PAUSED,
        _post(
            "customer_card",
            "/v1/customers/${customer:id}",
            payment_method="pm_card_visa",
            invoice_settings={"default_payment_method": "pm_card_visa"},
        ),
        _post("subscription_resumed", f"{SUB_PATH}/resume", billing_cycle_anchor="now"),
    ],
    # As the Stripe CLI's recipe: a one-day trial, warned about at once.
    "customer.subscription.trial_will_end": [
        customer(None),
        PRODUCT,
        PRICE,
        _post(
            "subscription",
            "/v1/subscriptions",
            customer="${customer:id}",
            items=[{"price": "${price:id}"}],
            trial_period_days=1,
        ),
    ],
    "billing_portal.session.created": [
        customer(None),
        _post("billing_portal", "/v1/billing_portal/sessions", customer="${customer:id}"),
    ],
    "invoice.paid": PAID,
    "invoice.payment_succeeded": PAID,
    "invoice.payment_failed": [
        customer("pm_card_chargeCustomerFail"),
        *INVOICE[1:],
        _post("invoice_finalized", f"{INVOICE_PATH}/finalize"),
        failing(_post("invoice_paid", f"{INVOICE_PATH}/pay")),
    ],
    # common customer, invoice, catalog and payment types
    "customer.created": [customer(None)],
    "customer.updated": [
        customer(None),
        _post("customer_updated", "/v1/customers/${customer:id}", **METADATA),
    ],
    "customer.deleted": [
        customer(None),
        _delete("customer_deleted", "/v1/customers/${customer:id}"),
    ],
    "invoice.created": INVOICE,
    "invoice.finalized": FINALIZED,
    "invoice.updated": [*INVOICE, _post("invoice_updated", INVOICE_PATH, **METADATA)],
    "invoice.voided": [*FINALIZED, _post("invoice_voided", f"{INVOICE_PATH}/void")],
    "invoice.marked_uncollectible": [
        *FINALIZED,
        _post("invoice_uncollectible", f"{INVOICE_PATH}/mark_uncollectible"),
    ],
    "invoice.payment_action_required": [
        PRODUCT,
        PRICE,
        customer("pm_card_threeDSecure2Required"),
        subscription(),
    ],
    "invoiceitem.created": INVOICE[:2],
    "product.created": [PRODUCT],
    "product.updated": [
        PRODUCT,
        _post("product_updated", "/v1/products/${product:id}", **METADATA),
    ],
    "product.deleted": [PRODUCT, _delete("product_deleted", "/v1/products/${product:id}")],
    "price.created": [PRODUCT, PRICE],
    "price.updated": [PRODUCT, PRICE, _post("price_updated", "/v1/prices/${price:id}", **METADATA)],
    "price.deleted": [PRODUCT, PRICE, _delete("price_deleted", "/v1/plans/${price:id}")],
    "payment_method.attached": [
        customer(None),
        _post(
            "payment_method", "/v1/payment_methods/pm_card_visa/attach", customer="${customer:id}"
        ),
    ],
    "payment_method.detached": [
        customer("pm_card_visa"),
        _post(
            "payment_method_detached",
            "/v1/payment_methods/${customer:invoice_settings.default_payment_method}/detach",
        ),
    ],
    "payment_intent.created": [payment_intent()],
    "payment_intent.succeeded": [payment_intent("pm_card_visa")],
    "payment_intent.payment_failed": [failing(payment_intent("pm_card_chargeDeclined"))],
    "payment_intent.requires_action": [payment_intent("pm_card_threeDSecure2Required")],
    "payment_intent.canceled": [
        payment_intent(),
        _post("payment_intent_canceled", "/v1/payment_intents/${payment_intent:id}/cancel"),
    ],
    "payment_intent.amount_capturable_updated": [
        payment_intent("pm_card_visa", capture_method="manual")
    ],
    "charge.succeeded": [payment_intent("pm_card_visa")],
    "charge.failed": [failing(payment_intent("pm_card_chargeDeclined"))],
    "charge.captured": [
        payment_intent("pm_card_visa", capture_method="manual"),
        _post("payment_intent_captured", "/v1/payment_intents/${payment_intent:id}/capture"),
    ],
    "setup_intent.created": setup_intent(),
    "setup_intent.succeeded": setup_intent("pm_card_visa"),
    "setup_intent.setup_failed": [
        customer(None),
        failing(setup_intent("pm_card_chargeDeclined")[1]),
    ],
    "setup_intent.canceled": [
        *setup_intent(),
        _post("setup_intent_canceled", "/v1/setup_intents/${setup_intent:id}/cancel"),
    ],
    "checkout.session.expired": [
        PRODUCT,
        PRICE,
        CHECKOUT_SESSION,
        _post("checkout_session_expired", "/v1/checkout/sessions/${checkout_session:id}/expire"),
    ],
    "coupon.created": [COUPON],
    "coupon.updated": [COUPON, _post("coupon_updated", "/v1/coupons/${coupon:id}", **METADATA)],
    "coupon.deleted": [COUPON, _delete("coupon_deleted", "/v1/coupons/${coupon:id}")],
    "promotion_code.created": [COUPON, PROMOTION_CODE],
    "promotion_code.updated": [
        COUPON,
        PROMOTION_CODE,
        _post("promotion_code_updated", "/v1/promotion_codes/${promotion_code:id}", active=False),
    ],
    "subscription_schedule.created": [PRODUCT, PRICE, customer(), SCHEDULE],
    "subscription_schedule.canceled": [
        PRODUCT,
        PRICE,
        customer(),
        SCHEDULE,
        _post("subscription_schedule_canceled", f"{SCHEDULE_PATH}/cancel"),
    ],
    "subscription_schedule.released": [
        PRODUCT,
        PRICE,
        customer(),
        SCHEDULE,
        _post("subscription_schedule_released", f"{SCHEDULE_PATH}/release"),
    ],
}
