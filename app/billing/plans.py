"""Plans: which prices buy which limits and features, and the prices a user may buy (the public
plans table, GET /api/plans, is `plans_table.py`).

`PLANS_FILE` names a JSON file (format in docs/entitlements.md); without it the built-in
defaults below apply: free = 10 generations a month, pro = unlimited, bought with the
configured monthly or yearly price, and pro kept for 7 days while Stripe retries a past_due
invoice.

A plan's `prices` may hold real price ids or the aliases "monthly" / "yearly", which stand for
STRIPE_PRICE_ID_MONTHLY / STRIPE_PRICE_ID_YEARLY. Aliases are resolved on every lookup rather
than at load time because those settings can be filled in after start-up (from lookup keys).

Only configured prices can be bought (`Catalog`).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from flask import current_app
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from app.billing.errors import InvalidRequest
from app.billing.price_lookup import PriceLookup
from app.config import ConfigError
from app.db import outside_transaction
from app.stripe.gateway import current_gateway

log = logging.getLogger(__name__)

FREE_PLAN_ID = "free"
PRICE_ALIASES = {"monthly": "STRIPE_PRICE_ID_MONTHLY", "yearly": "STRIPE_PRICE_ID_YEARLY"}

# A renewal whose payment fails keeps the paid plan this long (Stripe's own retries run for
# weeks; a user past due for longer is free until they fix their card). A plans file may say
# `"pastDueDays": null` for "as long as Stripe keeps the subscription past_due".
DEFAULT_PAST_DUE_DAYS = 7

DEFAULT_PLANS: dict[str, Any] = {
    "plans": {
        "free": {"generationsPerPeriod": 10, "features": ["generate", "standard_quality"]},
        "pro": {
            "prices": ["monthly", "yearly"],
            "generationsPerPeriod": None,
            "maxSeats": 50,
            "features": [
                "generate",
                "standard_quality",
                "hd_quality",
                "no_watermark",
                "priority_queue",
                "commercial_use",
            ],
        },
    },
    "grace": {"pastDueDays": DEFAULT_PAST_DUE_DAYS},
}


@dataclass(frozen=True)
class Plan:
    id: str
    prices: tuple[str, ...]
    generations: int | None  # per usage period; None = unlimited
    features: tuple[str, ...]
    # Checkout settings (docs/features.md): a trial for a first subscription, and the seats
    # (quantity) a buyer may choose; generations are per seat.
    trial_days: int | None = None
    trial_requires_card: bool = True
    trial_end_behavior: str = "cancel"  # without a card at the trial's end: cancel or pause
    min_seats: int = 1
    max_seats: int = 1

    @property
    def unlimited(self) -> bool:
        return self.generations is None


@dataclass(frozen=True)
class GracePolicy:
    # None: keep the paid plan for as long as Stripe keeps the subscription past_due (it moves
    # it to canceled or unpaid when its retries run out).
    past_due_days: int | None = DEFAULT_PAST_DUE_DAYS


@dataclass(frozen=True)
class Plans:
    free: Plan
    paid: tuple[Plan, ...]
    grace: GracePolicy

    def by_id(self, plan_id: str) -> Plan | None:
        return next((p for p in (self.free, *self.paid) if p.id == plan_id), None)

    def paid_plan_for(self, price_id: str | None, config: Mapping[str, Any]) -> Plan:
        """The paid plan a price buys. A live subscription on a price no plan lists (a legacy
        or hand-made price) still paid for something, so it gets the first paid plan."""
        for plan in self.paid:
            if price_id is not None and price_id in resolve_prices(plan, config):
                return plan
        _warn_once(price_id, self.paid[0].id)
        return self.paid[0]


@functools.cache
def _warn_once(price_id: str | None, plan_id: str) -> None:
    # Entitlements are read on every request; one line per unlisted price is enough.
    log.warning("price %s is in no plan; granting plan %s", price_id, plan_id)


def resolve_prices(plan: Plan, config: Mapping[str, Any]) -> frozenset[str]:
    resolved = set()
    for price in plan.prices:
        setting = PRICE_ALIASES.get(price)
        value = config.get(setting) if setting else price
        if value:
            resolved.add(value)
    return frozenset(resolved)


# -- the file format ------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _PlanSpec(_Strict):
    prices: list[str] = Field(default_factory=list, max_length=50)
    generationsPerPeriod: int | None = Field(ge=0, le=1_000_000_000)
    features: list[str] = Field(default_factory=list, max_length=100)
    trialDays: int | None = Field(default=None, ge=1, le=730)  # Stripe's bounds
    trialRequiresCard: bool = True
    trialEndBehavior: Literal["cancel", "pause"] = "cancel"
    minSeats: int = Field(default=1, ge=1, le=10_000)
    maxSeats: int = Field(default=1, ge=1, le=10_000)

    @model_validator(mode="after")
    def _seats_in_order(self) -> _PlanSpec:
        if self.minSeats > self.maxSeats:
            raise ValueError("minSeats is more than maxSeats")
        return self


class _GraceSpec(_Strict):
    pastDueDays: int | None = Field(default=DEFAULT_PAST_DUE_DAYS, ge=0, le=365)


class _PlansSpec(_Strict):
    plans: dict[str, _PlanSpec]
    grace: _GraceSpec = Field(default_factory=_GraceSpec)

    @model_validator(mode="after")
    def _one_free_plan_and_priced_paid_plans(self) -> _PlansSpec:
        free = self.plans.get(FREE_PLAN_ID)
        if free is None:
            raise ValueError(f'a plan named "{FREE_PLAN_ID}" is required (what non-payers get)')
        if free.prices:
            raise ValueError(f'the "{FREE_PLAN_ID}" plan cannot have prices')
        paid = {name: spec for name, spec in self.plans.items() if name != FREE_PLAN_ID}
        if not paid:
            raise ValueError("at least one paid plan is required")
        seen: dict[str, str] = {}
        for name, spec in paid.items():
            if not name.isidentifier() or len(name) > 50:
                raise ValueError(f"plan name {name!r}: letters, digits and _ only, at most 50")
            if not spec.prices:
                raise ValueError(f"plan {name!r} lists no prices")
            for price in spec.prices:
                if price in seen:
                    raise ValueError(f"price {price!r} is in plans {seen[price]!r} and {name!r}")
                seen[price] = name
        return self


def parse_plans(document: Any) -> Plans:
    """Validate a plans document (the parsed JSON) into `Plans`; ValueError says what is wrong."""
    try:
        spec = _PlansSpec.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'document'}: {error['msg']}"
            for error in exc.errors(include_url=False, include_input=False)
        )
        raise ValueError(problems) from exc

    def plan(name: str, body: _PlanSpec) -> Plan:
        return Plan(
            name,
            tuple(body.prices),
            body.generationsPerPeriod,
            tuple(body.features),
            trial_days=body.trialDays,
            trial_requires_card=body.trialRequiresCard,
            trial_end_behavior=body.trialEndBehavior,
            min_seats=body.minSeats,
            max_seats=body.maxSeats,
        )

    return Plans(
        free=plan(FREE_PLAN_ID, spec.plans[FREE_PLAN_ID]),
        paid=tuple(plan(n, b) for n, b in spec.plans.items() if n != FREE_PLAN_ID),
        grace=GracePolicy(past_due_days=spec.grace.pastDueDays),
    )


@functools.cache
def load_plans(path: str) -> Plans:
    """The plans of `PLANS_FILE` (read once per process), or the defaults when it is empty."""
    if not path:
        return parse_plans(DEFAULT_PLANS)
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except OSError as exc:
        raise ConfigError(f"PLANS_FILE {path}: cannot read it ({exc.strerror})") from exc
    except ValueError as exc:
        raise ConfigError(f"PLANS_FILE {path}: not valid JSON ({exc})") from exc
    try:
        return parse_plans(document)
    except ValueError as exc:
        raise ConfigError(f"PLANS_FILE {path}: {exc}") from exc


def current_plans() -> Plans:
    return load_plans(current_app.config.get("PLANS_FILE") or "")


# -- the prices a user may buy --------------------------------------------------------------------


def ensure_prices() -> None:
    """The configured prices known (those given by lookup key read from Stripe on first need);
    ProviderUnavailable (503) while Stripe can't say."""
    lookup: PriceLookup = current_app.extensions["price_lookup"]
    if lookup.missing(current_app.config):
        outside_transaction()  # Stripe is about to be asked
        lookup.ensure(current_app.config, current_gateway())


@dataclass(frozen=True)
class Catalog:
    monthly: str | None
    yearly: str | None
    others: tuple[str, ...]

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Catalog:
        return cls(
            monthly=config.get("STRIPE_PRICE_ID_MONTHLY") or None,
            yearly=config.get("STRIPE_PRICE_ID_YEARLY") or None,
            others=tuple(config.get("STRIPE_PRICE_IDS") or ()),
        )

    @property
    def price_ids(self) -> frozenset[str]:
        return frozenset(p for p in (self.monthly, self.yearly, *self.others) if p)

    def resolve(self, *, price_id: str | None, plan: str | None) -> str:
        """The price to sell for a request naming a `priceId` or a `plan`."""
        by_plan = {"monthly": self.monthly, "yearly": self.yearly}
        if plan is not None:
            planned = by_plan.get(plan)
            if not planned:
                raise InvalidRequest(f"The {plan} plan is not offered.", code="unknown_plan")
            if price_id is not None and price_id != planned:
                raise InvalidRequest(
                    "priceId and plan name different prices.", code="price_mismatch"
                )
            return planned
        if price_id is None:
            raise InvalidRequest("Give a priceId or a plan.", code="price_required")
        if price_id not in self.price_ids:
            raise InvalidRequest("This price cannot be bought here.", code="unknown_price")
        return price_id
