"""Every Stripe call the app makes, sent to stripe-mock (Stripe's own OpenAPI-driven mock).

stripe-mock validates each request's parameters against Stripe's published spec and answers
with Stripe's example objects: a wrong parameter name, type or value fails here, where the
stateful sandbox (`stripe_sandbox`) would accept it. It is stateless, so these tests check what
we send, not flows. The server comes from tests/stripe_mock_server.py (the shared build, or
STRIPE_MOCK_URL); `make test-stripe-mock` runs only these.

Each test names the gateway methods it exercises (`@exercises`), the gateway records what was
really called, and `test_every_gateway_method_has_a_stripe_mock_test` fails when a public
method of StripeGateway has no test here: a new Stripe call gets one.

The spec is from February 2022. A parameter that current Stripe accepts but that spec does not
know is not dropped from the app: the one call is checked with `newer_than_spec`, which insists
that the rejection names exactly that parameter (anything else wrong still fails) and fails
once a newer spec accepts it, so the allowance goes away by itself.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from stripe_mock_server import (
    StripeMockUnavailable,
    mock_dir,
    required,
    running_stripe_mock,
    unavailable_reason,
)

from app import create_app
from app.auth import issue_dev_token
from app.billing.errors import ProviderRejected
from app.billing.webhooks.handlers import HANDLED_EVENT_TYPES
from app.environment import DEFAULT_API_VERSION
from app.extensions import db
from app.models import User
from app.stripe import setup
from app.stripe.gateway import StripeGateway

pytestmark = pytest.mark.stripe_mock

# Public methods that never reach Stripe: no request for stripe-mock to check.
NOT_STRIPE_CALLS = {
    "from_config": "builds a gateway from the app's configuration",
    "verify_webhook": "checks a signature locally (tests/test_webhook_endpoint.py)",
}

USER_ID = "user_mock_1"
FRONTEND = "http://localhost:5173"
# Event types the app handles that Stripe added after the spec stripe-mock ships (2022-02).
EVENTS_NEWER_THAN_SPEC = frozenset(
    {"customer.subscription.paused", "customer.subscription.resumed"}
)
CONFIG = {"PUBLIC_URL": "https://billing.example.com", "STRIPE_API_VERSION": DEFAULT_API_VERSION}


def exercises(*methods: str) -> pytest.MarkDecorator:
    """The gateway methods a test sends to stripe-mock (checked against what it really calls)."""
    return pytest.mark.exercises(*methods)


@pytest.fixture(scope="session")
def stripe_mock_url() -> Iterator[str]:
    reason = unavailable_reason()
    if reason:
        if required():
            pytest.fail(f"STRIPE_MOCK_REQUIRED=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    try:
        with running_stripe_mock() as url:
            yield url
    except StripeMockUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def gateway(stripe_mock_url: str, request: pytest.FixtureRequest) -> Iterator[StripeGateway]:
    """The app's gateway (its real configuration path) aimed at stripe-mock, recording which of
    its public methods the test called; after the test, every method the test declares with
    `@exercises` must have been called."""
    gw = StripeGateway.from_config(
        {
            "STRIPE_SECRET_KEY": "sk_test_123",
            "STRIPE_API_VERSION": DEFAULT_API_VERSION,
            "STRIPE_API_BASE": stripe_mock_url,
            "STRIPE_MAX_NETWORK_RETRIES": 0,
            "STRIPE_CONNECT_TIMEOUT": 3.0,
            "STRIPE_READ_TIMEOUT": 8.0,
            "STRIPE_MAX_CONCURRENT_CALLS": 4,
            "STRIPE_CALL_QUEUE_WAIT": 1.0,
            "STRIPE_BREAKER_FAILURES": 100,
            "STRIPE_BREAKER_COOLDOWN": 1.0,
        }
    )
    failed_before = request.session.testsfailed
    called: set[str] = set()
    for name in gateway_methods():
        setattr(gw, name, _recorded(getattr(gw, name), name, called))
    yield gw
    if request.session.testsfailed > failed_before:
        return  # the test's own failure says more
    marker = request.node.get_closest_marker("exercises")
    declared = set(marker.args) if marker else set()
    missing = declared - called
    assert not missing, f"declared in @exercises but never called: {sorted(missing)}"


def _recorded(method: Callable[..., Any], name: str, called: set[str]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        called.add(name)
        return method(*args, **kwargs)

    return wrapper


def gateway_methods() -> list[str]:
    """StripeGateway's public methods that call Stripe."""
    return sorted(
        name
        for name, member in inspect.getmembers(StripeGateway, callable)
        if not name.startswith("_") and name not in NOT_STRIPE_CALLS
    )


def newer_than_spec(
    call: Callable[[], Any],
    *,
    unknown: frozenset[str] = frozenset(),
    value_of: frozenset[str] = frozenset(),
) -> None:
    """The narrow allowance: stripe-mock's 2022 spec refuses this call only because of
    parameters current Stripe accepts: exactly the `unknown` parameter names, or the value of
    one of `value_of`. Any other problem with the call still fails, and so does the day the spec
    accepts it (then test it like the others)."""
    with pytest.raises(ProviderRejected) as refused:
        call()
    assert refused.value.code == "payment_provider_rejected"
    # stripe-mock names every unknown property, else the first invalid value it meets (both
    # in Go's map order, which varies from run to run).
    message = str(refused.value.__cause__)
    if unknown:
        names = message.rpartition("additional properties are not allowed: ")[2]
        assert set(names.split(", ")) == unknown, message
    else:
        failed = message.rpartition("object property '")[2].partition("'")[0]
        assert failed in value_of, message
        assert message.endswith("validation failed: value is not in enumeration"), message


def _spec() -> dict[str, Any] | None:
    path = mock_dir() / "spec3.json"
    return json.loads(path.read_text()) if path.is_file() else None


# -- the guard ---------------------------------------------------------------------------------


def test_every_gateway_method_has_a_stripe_mock_test() -> None:
    tested: set[str] = set()
    for member in globals().values():
        for mark in getattr(member, "pytestmark", []):
            if mark.name == "exercises":
                tested.update(mark.args)
    untested = sorted(set(gateway_methods()) - tested)
    assert not untested, (
        f"StripeGateway methods with no stripe-mock test in {__file__}: {untested}. Add a test "
        "marked @exercises(...) calling them as the app does (or list a method that never "
        "reaches Stripe in NOT_STRIPE_CALLS)."
    )
    assert not tested - set(gateway_methods()), "@exercises names a method that does not exist"


# -- checkout ----------------------------------------------------------------------------------


@exercises("create_customer", "update_customer_email")
def test_customer_for_a_user(gateway: StripeGateway) -> None:
    customer = gateway.create_customer(user_id=USER_ID)
    assert customer["object"] == "customer" and customer["id"].startswith("cus_")
    updated = gateway.update_customer_email(customer["id"], "buyer@example.com")
    assert updated["email"] == "buyer@example.com"  # stripe-mock echoes what it validated


@exercises("create_checkout_session", "retrieve_checkout_session", "expire_checkout_session")
def test_checkout_session_calls(gateway: StripeGateway) -> None:
    # As checkout.start_checkout sends it (its metadata is the API's `metadata` field).
    session = gateway.create_checkout_session(
        user_id=USER_ID,
        customer_id="cus_mock",
        price_id="price_mock_monthly",
        success_url=f"{FRONTEND}/billing/success?session_id={{CHECKOUT_SESSION_ID}}",
        cancel_url=f"{FRONTEND}/billing/cancel",
        metadata={"campaign": "spring"},
    )
    assert session["object"] == "checkout.session"
    assert session["mode"] == "subscription"
    assert session["client_reference_id"] == USER_ID
    # With an explicit idempotency key, as older callers and retries do.
    keyed = gateway.create_checkout_session(
        user_id=USER_ID,
        customer_id="cus_mock",
        price_id="price_mock_yearly",
        success_url=f"{FRONTEND}/billing/success",
        cancel_url=f"{FRONTEND}/billing/cancel",
        metadata={},
        idempotency_key="checkout-mock-1",
    )
    assert keyed["object"] == "checkout.session"
    # The success page's read expands the subscription.
    read = gateway.retrieve_checkout_session(session["id"])
    assert read["object"] == "checkout.session" and read["id"] == session["id"]
    expired = gateway.expire_checkout_session(session["id"])
    assert expired["object"] == "checkout.session"


@exercises("list_open_checkout_sessions")
def test_listing_a_customers_open_sessions(gateway: StripeGateway) -> None:
    """`customer` (2022-08) and `status` (2023) are List Checkout Sessions filters today; the
    2022 spec has neither. Dropping them would list every session of the account and expire
    other users' checkouts, so the app keeps them."""
    spec = _spec()
    if spec is not None:
        known = {p["name"] for p in spec["paths"]["/v1/checkout/sessions"]["get"]["parameters"]}
        assert not {"customer", "status"} & known, "the spec knows them now: drop the allowance"
    newer_than_spec(
        lambda: gateway.list_open_checkout_sessions("cus_mock"),
        unknown=frozenset({"customer", "status"}),
    )


# -- subscriptions -----------------------------------------------------------------------------


@exercises("retrieve_subscription", "reread_subscription")
def test_subscription_reads(gateway: StripeGateway) -> None:
    assert gateway.retrieve_subscription("sub_mock")["object"] == "subscription"
    assert gateway.reread_subscription("sub_mock")["object"] == "subscription"


@exercises("set_cancel_at_period_end", "cancel_subscription_now")
def test_subscription_changes(gateway: StripeGateway) -> None:
    # changes._ask_stripe: cancel at period end, resume, cancel now.
    assert gateway.set_cancel_at_period_end("sub_mock", True)["object"] == "subscription"
    assert gateway.set_cancel_at_period_end("sub_mock", False)["object"] == "subscription"
    # Also duplicates.resolve_at_once (the newer duplicate, refunded first: no proration).
    assert gateway.cancel_subscription_now("sub_mock")["object"] == "subscription"


@exercises("live_subscriptions", "list_subscriptions")
def test_subscription_lists(gateway: StripeGateway) -> None:
    # checkout._refuse_if_live_in_stripe; sync.sync_user (one customer); sync.sync_all (all).
    live = gateway.live_subscriptions("cus_mock")
    assert live and all(sub["object"] == "subscription" for sub in live)
    of_customer = list(gateway.list_subscriptions(customer_id="cus_mock"))
    assert of_customer and of_customer[0]["object"] == "subscription"
    everyone = list(gateway.list_subscriptions())
    assert everyone and everyone[0]["object"] == "subscription"


@exercises("list_events_after")
def test_event_catch_up(gateway: StripeGateway) -> None:
    # sync.sync_from_events: from the stored cursor, or from the start when there is none.
    assert all(event["object"] == "event" for event in gateway.list_events_after(1_700_000_000))
    assert gateway.list_events_after(None)


# -- portal ------------------------------------------------------------------------------------


@exercises("create_portal_session")
def test_portal_session(gateway: StripeGateway) -> None:
    portal = gateway.create_portal_session(customer_id="cus_mock", return_url=f"{FRONTEND}/account")
    assert portal["object"] == "billing_portal.session"
    assert portal["url"].startswith("https://")


# -- catalog and setup (through app/stripe/setup.py, as `flask billing setup-*` runs them) ----


@exercises("list_first_page", "create_product", "create_recurring_price", "create_one_time_price")
def test_setup_products(gateway: StripeGateway) -> None:
    result = setup.setup_products(gateway)
    # stripe-mock's canned price matches no spec, so every price is (re)created.
    assert set(result.price_ids) == {"pro_monthly", "pro_yearly", "credit_pack"}
    assert all(price_id.startswith("price_") for price_id in result.price_ids.values())
    # The product create path, with our fixed id (the canned list always finds one).
    product = gateway.create_product(
        name=setup.PRODUCT_NAME, description=setup.PRODUCT_DESCRIPTION, product_id=setup.PRODUCT_ID
    )
    assert product["id"] == setup.PRODUCT_ID


@exercises("retrieve_price", "find_price_by_lookup_key")
def test_price_reads(gateway: StripeGateway) -> None:
    # plans_table.read_plans_table and check_stripe_setup; price_lookup.PriceLookup.ensure.
    price = gateway.retrieve_price("price_mock_monthly")
    assert price["object"] == "price"
    found = gateway.find_price_by_lookup_key("pro_monthly")
    assert found is not None and found["object"] == "price"


@exercises("list_first_page", "delete_webhook_endpoint", "create_webhook_endpoint")
def test_webhook_endpoint_setup(gateway: StripeGateway) -> None:
    """Two newer-than-spec values, each kept in the app and allowed here alone:
    - `api_version`: the endpoint is pinned to our version so events arrive in the shape this
      code reads whatever the account's default; Stripe accepts any version, the 2022 spec
      enumerates those it knew (up to 2020-08-27).
    - `enabled_events`: `customer.subscription.paused`/`resumed` (Stripe, late 2022) are
      handled (a paused subscription loses access); the 2022 spec's list predates them.
    Without both, the same request passes, so nothing else in it is wrong."""
    spec = _spec()
    if spec is not None:
        form = spec["paths"]["/v1/webhook_endpoints"]["post"]["requestBody"]["content"]
        known = form["application/x-www-form-urlencoded"]["schema"]["properties"]
        assert DEFAULT_API_VERSION not in known["api_version"]["enum"], "drop the allowance"
        unknown = [
            e for e in HANDLED_EVENT_TYPES if e not in known["enabled_events"]["items"]["enum"]
        ]
        assert set(unknown) == EVENTS_NEWER_THAN_SPEC, "update EVENTS_NEWER_THAN_SPEC"
    # setup.setup_webhook_endpoint with --replace, as `flask billing setup-webhook` runs it:
    # the canned endpoint's URL is not ours, so nothing is deleted; the create carries both.
    newer_than_spec(
        lambda: setup.setup_webhook_endpoint(gateway, CONFIG, HANDLED_EVENT_TYPES, replace=True),
        value_of=frozenset({"api_version", "enabled_events"}),
    )
    # Each alone, then neither: nothing else in the request is wrong.
    url = setup.webhook_url(CONFIG)
    known_events = [e for e in HANDLED_EVENT_TYPES if e not in EVENTS_NEWER_THAN_SPEC]
    newer_than_spec(
        lambda: gateway.create_webhook_endpoint(url=url, enabled_events=HANDLED_EVENT_TYPES),
        value_of=frozenset({"enabled_events"}),
    )
    newer_than_spec(
        lambda: gateway.create_webhook_endpoint(
            url=url, enabled_events=known_events, api_version=DEFAULT_API_VERSION
        ),
        value_of=frozenset({"api_version"}),
    )
    created = gateway.create_webhook_endpoint(url=url, enabled_events=known_events)
    assert created["object"] == "webhook_endpoint"
    deleted = gateway.delete_webhook_endpoint(created["id"])
    assert deleted["deleted"] is True


@exercises("list_first_page", "retrieve_price")
def test_check_stripe_setup(gateway: StripeGateway) -> None:
    # `flask billing check-setup`: the key works, the prices are read, our endpoint is missing.
    config = {**CONFIG, "STRIPE_PRICE_ID_MONTHLY": "price_m", "STRIPE_PRICE_ID_YEARLY": "price_y"}
    problems = setup.check_stripe_setup(gateway, config, HANDLED_EVENT_TYPES)
    assert problems == [f"no webhook endpoint for {setup.webhook_url(CONFIG)} (PUBLIC_URL)"]


# -- the app's own routes and services, with stripe-mock as its Stripe --------------------------

JWT_SECRET = "stripe-mock-suite-jwt-secret-0123456789abcdef"


@pytest.fixture(scope="module")
def mocked_app(stripe_mock_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """The app configured as in production but with stripe-mock as Stripe, on its own SQLite
    database (these tests check what is sent to Stripe, not SQL), so its requests carry exactly
    the parameters the routes build."""
    from flask_migrate import upgrade

    application = create_app(
        {
            "APP_ENV": "testing",
            "TESTING": True,
            "DATABASE_URL": f"sqlite:///{tmp_path_factory.mktemp('mockdb')}/billing.db",
            "STRIPE_SECRET_KEY": "sk_test_123",
            "STRIPE_API_BASE": stripe_mock_url,
            "STRIPE_MAX_NETWORK_RETRIES": 0,
            "STRIPE_PRICE_ID_MONTHLY": "price_mock_monthly",
            "STRIPE_PRICE_ID_YEARLY": "price_mock_yearly",
            "FRONTEND_URLS": [FRONTEND],
            "AUTH_JWT_SECRET": JWT_SECRET,
            "LOG_LEVEL": "WARNING",
            "RATE_LIMIT_ENABLED": False,
        }
    )
    with application.app_context():
        upgrade()
    yield application
    application.extensions["webhook_applier"].stop()
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


def _signed_in(user_id: str) -> dict[str, str]:
    token = issue_dev_token(
        {"AUTH_JWT_SECRET": JWT_SECRET}, user_id, email=f"{user_id}@example.com", ttl_seconds=600
    )
    return {"Authorization": f"Bearer {token}"}


def test_checkout_and_portal_routes_send_what_stripe_accepts(mocked_app: Flask) -> None:
    """A new user's checkout (customer, its email, the session) and then the portal, through
    the API routes and services: every request they make passed stripe-mock's validation."""
    client = mocked_app.test_client()
    headers = _signed_in("mock-route-user")
    created = client.post("/api/create-checkout-session", json={"plan": "monthly"}, headers=headers)
    assert created.status_code == 200, created.get_json()
    assert created.get_json()["session"]["id"].startswith("cs_")
    with mocked_app.app_context():
        user = db.session.get(User, "mock-route-user")
        assert user is not None and (user.stripe_customer_id or "").startswith("cus_")
    portal = client.post("/api/create-portal-session", json={}, headers=headers)
    assert portal.status_code == 200, portal.get_json()
    assert portal.get_json()["url"].startswith("https://")


def test_plans_route_reads_the_configured_prices(mocked_app: Flask) -> None:
    reply = mocked_app.test_client().get("/api/plans")
    assert reply.status_code == 200, reply.get_json()
    amounts = [price for plan in reply.get_json()["plans"] for price in plan["prices"]]
    assert amounts, reply.get_json()  # stripe-mock's canned price, once per configured id


def test_billing_commands_against_stripe_mock(mocked_app: Flask) -> None:
    """The operator's commands (`flask billing ...`), each a real Stripe conversation: setup,
    the incremental and full reconciliations, one user's sync. stripe-mock's canned
    subscription belongs to no user here, so sync records it as such, without errors."""
    runner = mocked_app.test_cli_runner()
    products = runner.invoke(args=["billing", "setup-products"])
    assert products.exit_code == 0, products.output
    assert "STRIPE_PRICE_ID_MONTHLY=price_" in products.output
    events = runner.invoke(args=["billing", "sync", "--events"])
    assert events.exit_code == 0, events.output
    assert "cursor=" in events.output
    full = runner.invoke(args=["billing", "sync"])
    assert full.exit_code == 0, full.output
    assert "0 error(s)" in full.output
    created = mocked_app.test_client().post(
        "/api/create-checkout-session", json={"plan": "yearly"}, headers=_signed_in("mock-sync")
    )
    assert created.status_code == 200, created.get_json()
    one = runner.invoke(args=["billing", "sync", "--user", "mock-sync"])
    assert one.exit_code == 0, one.output
    assert "0 error(s)" in one.output


# -- plan changes, seats, trials and promotion codes (docs/features.md) -----------------------


@exercises("create_checkout_session")
def test_checkout_with_seats_a_trial_and_a_promotion_code_is_accepted(
    gateway: StripeGateway,
) -> None:
    from app.stripe.gateway import CheckoutTrial

    session = gateway.create_checkout_session(
        user_id=USER_ID,
        customer_id="cus_mock",
        price_id="price_mock_monthly",
        success_url=f"{FRONTEND}/billing/success",
        cancel_url=f"{FRONTEND}/billing/cancel",
        metadata={},
        quantity=3,
        trial=CheckoutTrial(days=14),  # with a card: only trial_period_days is sent
        promotion_code_id="promo_mock",
    )
    assert session["object"] == "checkout.session"


@exercises("create_checkout_session")
def test_a_trial_without_a_card_is_newer_than_the_spec(gateway: StripeGateway) -> None:
    """`payment_method_collection` and `subscription_data.trial_settings` came late in 2022;
    the card-less trial journey runs against the sandbox (tests/test_plan_changes.py)."""
    from app.stripe.gateway import CheckoutTrial

    newer_than_spec(
        lambda: gateway.create_checkout_session(
            user_id=USER_ID,
            customer_id="cus_mock",
            price_id="price_mock_monthly",
            success_url=f"{FRONTEND}/billing/success",
            cancel_url=f"{FRONTEND}/billing/cancel",
            metadata={},
            trial=CheckoutTrial(days=14, requires_card=False, end_behavior="cancel"),
        ),
        unknown=frozenset({"payment_method_collection"}),
    )


@exercises("find_promotion_code")
def test_promotion_code_lookup_is_accepted(gateway: StripeGateway) -> None:
    found = gateway.find_promotion_code("LAUNCH25")
    assert found is None or found["object"] == "promotion_code"


@exercises("change_subscription_item")
def test_plan_or_seat_change_is_accepted(gateway: StripeGateway) -> None:
    changed = gateway.change_subscription_item(
        "sub_mock",
        item_id="si_mock",
        price_id="price_mock_yearly",
        quantity=2,
        proration_date=1_700_000_000,
        starting_from="2026-12-05T06:00:00+00:00",
    )
    assert changed["object"] == "subscription"


@exercises("preview_subscription_change")
def test_the_change_preview_is_newer_than_the_spec(gateway: StripeGateway) -> None:
    """`POST /v1/invoices/create_preview` (2024) is not in the 2022 spec: stripe-mock takes it for
    an update of invoice "create_preview" and refuses the preview's parameters. The preview
    journey runs against the sandbox (tests/test_plan_changes.py and
    tests/sandbox/test_sandbox_previews.py)."""
    newer_than_spec(
        lambda: gateway.preview_subscription_change(
            "sub_mock",
            item_id="si_mock",
            price_id="price_mock_yearly",
            quantity=2,
            proration_date=1_700_000_000,
        ),
        unknown=frozenset({"subscription_details", "subscription"}),
    )


# -- tax, customer email, upcoming invoice, credit packs (docs/features.md) -------------------


@exercises("create_checkout_session")
def test_checkout_with_tax_address_and_tax_ids_is_accepted(gateway: StripeGateway) -> None:
    from app.billing.invoices.tax import checkout_tax_params

    tax = checkout_tax_params({"STRIPE_AUTOMATIC_TAX": True, "STRIPE_TAX_ID_COLLECTION": True})
    session = gateway.create_checkout_session(
        user_id=USER_ID,
        customer_id="cus_mock",
        price_id="price_mock_monthly",
        success_url=f"{FRONTEND}/billing/success",
        cancel_url=f"{FRONTEND}/billing/cancel",
        metadata={},
        tax=tax,
    )
    assert session["automatic_tax"]["enabled"] is True
    assert session["billing_address_collection"] == "required"


@exercises("preview_upcoming_invoice")
def test_upcoming_invoice_preview_is_newer_than_the_spec(gateway: StripeGateway) -> None:
    """`POST /v1/invoices/create_preview` replaced `GET /v1/invoices/upcoming` in API
    2025-03-31; stripe-mock's spec (February 2022) reads the path as an update of an invoice
    named "create_preview" and refuses its parameters. The call's shape is covered by the
    sandbox (tests/test_invoices_dunning.py)."""
    newer_than_spec(
        lambda: gateway.preview_upcoming_invoice(customer_id="cus_mock", subscription_id="sub_m"),
        unknown=frozenset({"customer", "subscription"}),
    )


@exercises("create_credit_pack_session")
def test_credit_pack_checkout_is_accepted(gateway: StripeGateway) -> None:
    session = gateway.create_credit_pack_session(
        user_id=USER_ID,
        customer_id="cus_mock",
        price_id="price_mock_pack",
        generations=100,
        success_url=f"{FRONTEND}/billing/success",
        cancel_url=f"{FRONTEND}/billing/cancel",
    )
    assert session["object"] == "checkout.session"


# -- refunds (the duplicate policy and `flask billing refund`) ---------------------------------


@exercises("refund_payment")
def test_refunds_of_a_payment_or_a_charge_are_accepted(gateway: StripeGateway) -> None:
    full = gateway.refund_payment("pi_mock", reason="duplicate")
    assert full["object"] == "refund"
    part = gateway.refund_payment("ch_mock", amount=500, reason="requested_by_customer")
    assert part["object"] == "refund"


@exercises("invoice_payment_intent", "refund_invoice")
def test_an_invoice_refund_looks_up_its_payment(gateway: StripeGateway) -> None:
    """`GET /v1/invoice_payments` (2025) is not in the 2022 spec: stripe-mock answers it 404,
    so the lookup is refused there; the refund of an invoice's payment runs against the
    sandbox (tests/test_checkout_races.py)."""
    with pytest.raises(Exception) as refused:
        gateway.refund_invoice("in_mock")
    assert "invoice_payments" in str(refused.value.__cause__ or refused.value)
