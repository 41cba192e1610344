"""`flask billing check-stripe|setup-products|setup-webhook`: set up the Stripe account this
code expects (the Pro product and its prices, the webhook endpoint) and verify it."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from app.billing.errors import BillingError
from app.billing.webhooks.handlers import HANDLED_EVENT_TYPES
from app.cli.common import fail
from app.stripe.gateway import current_gateway
from app.stripe.setup import check_stripe_setup, setup_products, setup_webhook_endpoint


def report_stripe_setup() -> bool:
    problems = check_stripe_setup(current_gateway(), current_app.config, HANDLED_EVENT_TYPES)
    for problem in problems:
        click.echo(f"stripe: {problem}", err=True)
    if not problems:
        click.echo("ok: Stripe key, prices and webhook endpoint as configured")
    return not problems


@click.command("check-stripe")
@click.option("--warn-only", is_flag=True, help="Print the problems but exit 0 (start-up).")
@with_appcontext
def check_stripe_command(warn_only: bool) -> None:
    """Verify the key, the prices and the webhook endpoint (URL, events, api_version)."""
    if not report_stripe_setup() and not warn_only:
        raise click.exceptions.Exit(1)


@click.command("setup-products")
@with_appcontext
def setup_products_command() -> None:
    """Create or update the product, its $19/month and $180/year prices and the $5 one-time
    credit pack price (by lookup key) in the Stripe account the key points to; print the env
    lines to use them."""
    try:
        result = setup_products(current_gateway())
    except BillingError as exc:
        fail(f"Stripe refused: {exc.message} ({exc.code})")
        return
    for action in result.actions:
        click.echo(action, err=True)
    click.echo(f"# product {result.product_id}; or use STRIPE_PRICE_LOOKUP_KEY_MONTHLY/_YEARLY")
    for line in result.env_lines():
        click.echo(line)


@click.command("setup-webhook")
@click.option("--replace", is_flag=True, help="Delete an existing endpoint for the URL first.")
@with_appcontext
def setup_webhook_command(replace: bool) -> None:
    """Create the webhook endpoint PUBLIC_URL/api/webhooks/stripe with the handled events and
    the pinned api_version; print STRIPE_WEBHOOK_SECRET=..."""
    try:
        endpoint = setup_webhook_endpoint(
            current_gateway(), current_app.config, HANDLED_EVENT_TYPES, replace=replace
        )
    except BillingError as exc:
        fail(f"Stripe refused: {exc.message} ({exc.code})")
        return
    if endpoint is None:
        fail("an endpoint for this URL exists; its secret is shown only on create (--replace)")
        return
    click.echo(f"created webhook endpoint {endpoint['id']} for {endpoint['url']}", err=True)
    click.echo(f"STRIPE_WEBHOOK_SECRET={endpoint['secret']}")
