"""A stand-in for Stripe Tax: with `automatic_tax[enabled]` on the subscription (or on the
Checkout session that made it) and a customer address in one of these countries, each invoice
line is taxed at the country's standard VAT rate (tax exclusive) and the invoice's
`total_taxes`, `total` and `amount_due` include it. Other countries, or no address: no tax
(Stripe says `automatic_tax.status = requires_location_inputs` then)."""

from __future__ import annotations

from typing import Any

# Standard rates in basis points (sandbox figures: Stripe Tax's real rates are per product).
VAT_BASIS_POINTS = {
    "GB": 2000,
    "DE": 1900,
    "FR": 2000,
    "NL": 2100,
    "IE": 2300,
    "ES": 2100,
    "IT": 2200,
}


def wants_automatic_tax(value: Any) -> bool:
    """`automatic_tax[enabled]` as sent (form-encoded "true") or as stored (True)."""
    enabled = (value or {}).get("enabled") if isinstance(value, dict) else None
    return enabled is True or str(enabled).lower() == "true"


def apply_tax(
    invoice: dict[str, Any], customer: dict[str, Any], sub: dict[str, Any] | None
) -> None:
    """Tax the invoice's lines when its subscription uses automatic tax."""
    if not wants_automatic_tax((sub or {}).get("automatic_tax")):
        return
    country = ((customer.get("address") or {}).get("country") or "").upper()
    rate = VAT_BASIS_POINTS.get(country)
    invoice["automatic_tax"] = {
        **invoice["automatic_tax"],
        "enabled": True,
        "status": "complete" if country else "requires_location_inputs",
    }
    if rate is None:
        return
    tax_total = 0
    for line in invoice["lines"]["data"]:
        amount = round(line["amount"] * rate / 10_000)
        tax_total += amount
        line["taxes"] = [_tax_entry(amount, line["amount"])]
    subtotal = invoice["subtotal"]
    invoice["total_taxes"] = [_tax_entry(tax_total, subtotal)]
    invoice["total"] = invoice["amount_due"] = invoice["amount_remaining"] = subtotal + tax_total
    invoice["total_excluding_tax"] = subtotal


def _tax_entry(amount: int, taxable: int) -> dict[str, Any]:
    return {
        "amount": amount,
        "tax_behavior": "exclusive",
        "tax_rate_details": None,
        "taxability_reason": "standard_rated",
        "taxable_amount": taxable,
        "type": "tax_rate_details",
    }


def tax_id_of(value: str) -> dict[str, str]:
    """A tax id typed at Checkout as Stripe stores it (`{type, value}`): a VAT number starting
    with an EU country's prefix is `eu_vat` (Greece's prefix is EL), GB is `gb_vat`; anything
    else the sandbox can't classify is `unknown`, as Stripe reports one it can't validate."""
    prefix = value[:2]
    if prefix == "GB":
        kind = "gb_vat"
    elif prefix in EU_VAT_PREFIXES.split():
        kind = "eu_vat"
    else:
        kind = "unknown"
    return {"type": kind, "value": value}


# The VAT number prefixes of the EU's member states (Greece's is EL, not GR).
EU_VAT_PREFIXES = "AT BE BG CY CZ DE DK EE EL ES FI FR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK"
