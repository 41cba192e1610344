"""`flask billing refund <invoice or payment id> [--amount CENTS]`: give money back from the ops
CLI through the same gateway call the duplicate policy uses, with an audit entry.

An invoice (in_...) is refunded through the payment that paid it; a payment intent (pi_...) or
a charge (ch_...) directly. The refund's idempotency key covers the payment and the amount, so
running the same command twice (a retry after a lost answer) never pays out twice."""

from __future__ import annotations

import click

from app import audit
from app.billing.errors import BillingError
from app.cli.billing import billing_cli
from app.db import unit_of_work
from app.stripe.gateway import current_gateway

REFUNDABLE_PREFIXES = ("in_", "pi_", "ch_", "py_")


@billing_cli.command("refund")
@click.argument("target")
@click.option(
    "--amount",
    type=click.IntRange(min=1),
    default=None,
    help="Cents to refund (default: all that is left).",
)
@click.option(
    "--reason",
    type=click.Choice(["duplicate", "fraudulent", "requested_by_customer"]),
    default="requested_by_customer",
    show_default=True,
)
def refund_command(target: str, amount: int | None, reason: str) -> None:
    """Refund TARGET: an invoice (in_...), a payment intent (pi_...) or a charge (ch_...)."""
    if not target.startswith(REFUNDABLE_PREFIXES) or len(target) > 255:
        raise click.BadParameter("give an invoice (in_...), payment (pi_...) or charge (ch_...)")
    gateway = current_gateway()
    try:
        if target.startswith("in_"):
            refund = gateway.refund_invoice(target, amount=amount, reason=reason)
        else:
            refund = gateway.refund_payment(target, amount=amount, reason=reason)
    except BillingError as exc:
        with unit_of_work():
            audit.record("ops.refund", exc.code, stripe_object=target, detail=exc.message)
        click.echo(f"refund of {target} refused: {exc.code}: {exc.message}", err=True)
        raise click.exceptions.Exit(1) from exc
    detail = f"{refund['id']}: {refund['amount']} {refund['currency']} ({refund['status']})"
    with unit_of_work():
        audit.record("ops.refund", "ok", stripe_object=target, detail=detail)
    click.echo(f"refunded {target}: {detail}")
