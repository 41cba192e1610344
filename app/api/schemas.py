"""Request and reply bodies; the OpenAPI document is generated from these models.

Field names are the API's published camelCase names, which the Spark front end already uses.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator, model_validator

from app.safe_text import has_unsafe_chars

SUBSCRIPTION_STATUSES = (
    "incomplete",
    "incomplete_expired",
    "trialing",
    "active",
    "past_due",
    "canceled",
    "unpaid",
    "paused",
)


def _component(name: str) -> WithJsonSchema:
    # Enums whose values come from configuration or from other modules are components the
    # document builder fills in (app/api/openapi.py turns this marker into a $ref); replies
    # stay plain strings at run time, and the suite checks them against the document.
    return WithJsonSchema({"x-component": name})


def one_of(*values: str) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", "enum": list(values)})


Tier = Annotated[str, _component("Tier")]
SubscriptionStatus = Annotated[str, _component("SubscriptionStatus")]
AccountStatus = Annotated[str, _component("AccountStatus")]
ErrorCode = Annotated[str, _component("ErrorCode")]
Millis = Annotated[int, Field(description="ms since the epoch")]
Interval = Annotated[str, one_of("day", "week", "month", "year")]

# Stripe's metadata limits: 50 keys (we add userId, so 49 are the caller's), keys up to 40
# characters, values up to 500.
MAX_METADATA_KEYS = 49


def _unsafe_fields(payload: dict[str, Any]) -> list[str]:
    """Fields whose strings hold control characters or lone surrogates (metadata values may
    hold tabs and line breaks). `parse_body` has already bounded the depth."""
    found: list[str] = []
    for name, value in payload.items():
        if isinstance(name, str) and has_unsafe_chars(name):
            found.append("body")
        elif isinstance(value, str) and has_unsafe_chars(value):
            found.append(name)
        elif isinstance(value, dict):
            for key, item in value.items():
                if has_unsafe_chars(str(key)) or (
                    isinstance(item, str) and has_unsafe_chars(item, free_text=name == "metadata")
                ):
                    found.append(f"{name}.{key!a}")
    return found


METADATA_SCHEMA: dict[str, Any] = {
    "type": "object",
    "maxProperties": MAX_METADATA_KEYS,
    "propertyNames": {"minLength": 1, "maxLength": 40},
    "additionalProperties": {"type": "string", "maxLength": 500},
    "description": "Up to 49 keys of 1-40 characters, values at most 500 (Stripe's limits)",
}


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @model_validator(mode="before")
    @classmethod
    def _no_control_characters(cls, data: Any) -> Any:
        if isinstance(data, dict):
            bad = _unsafe_fields(data)
            if bad:
                raise ValueError(
                    "control characters or invalid unicode in: " + ", ".join(sorted(set(bad)))
                )
        return data


class Reply(BaseModel):
    # Replies are closed: a field we send is a field the document names.
    model_config = ConfigDict(json_schema_extra={"additionalProperties": False})


class CreateCheckoutSessionRequest(Body):
    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [{"required": ["priceId"]}, {"required": ["plan"]}],
            "description": "Give `priceId` or `plan` (both: they must name the same price).",
        }
    )

    priceId: str | None = Field(default=None, min_length=1, max_length=255)
    plan: Literal["monthly", "yearly"] | None = None
    userId: str | None = Field(
        default=None, max_length=255, description="Optional; must be the caller's own id."
    )
    userEmail: str | None = Field(
        default=None, max_length=255, description="Ignored: the token's email is used."
    )
    successUrl: str | None = Field(default=None, max_length=2048)
    cancelUrl: str | None = Field(default=None, max_length=2048)
    mode: Literal["subscription"] = "subscription"
    quantity: int | None = Field(None, strict=True, ge=1, le=10_000, description="Seats")
    promotionCode: str | None = Field(
        None, min_length=1, max_length=100, description="400 invalid_promotion_code if unknown"
    )
    metadata: Annotated[dict[str, str], WithJsonSchema(METADATA_SCHEMA)] = Field(
        default_factory=dict, max_length=MAX_METADATA_KEYS
    )

    @field_validator("metadata")
    @classmethod
    def _metadata_within_stripe_limits(cls, value: dict[str, str]) -> dict[str, str]:
        for key, item in value.items():
            if not key or len(key) > 40 or len(item) > 500:
                raise ValueError("metadata keys are 1-40 characters and values at most 500")
        return value


class RetrieveCheckoutSessionRequest(Body):
    sessionId: str = Field(min_length=1, max_length=255)


class CancelSubscriptionRequest(Body):
    subscriptionId: str | None = Field(default=None, min_length=1, max_length=255)
    immediately: bool = False


class ResumeSubscriptionRequest(Body):
    subscriptionId: str | None = Field(default=None, min_length=1, max_length=255)


class CreatePortalSessionRequest(Body):
    customerId: str | None = Field(default=None, min_length=1, max_length=255)
    returnUrl: str | None = Field(default=None, max_length=2048)


# -- replies -------------------------------------------------------------------------------------


class CheckoutSessionOut(Reply):
    id: str
    url: str | None = None
    status: str | None = None
    customerId: str | None = None
    subscriptionId: str | None = None
    paymentStatus: str | None = None


class CheckoutSessionReply(Reply):
    session: CheckoutSessionOut


class SubscriptionOut(Reply):
    id: str
    customerId: str | None
    status: SubscriptionStatus
    tier: Tier
    priceId: str | None
    interval: Interval | None
    currentPeriodStart: int | None = Field(description="ms since the epoch")
    currentPeriodEnd: int | None = Field(description="ms since the epoch")
    cancelAtPeriodEnd: bool
    cancelAt: int | None
    canceledAt: int | None
    trialEnd: int | None
    quantity: int | None = Field(description="Seats (null: one, from before seats)")
    trialEndsAt: int | None = Field(description="ms; set while the subscription is trialing")
    trialWillEndAt: int | None = Field(
        description="ms; when Stripe warned that the trial ends soon (show a banner)"
    )


class SubscriptionReply(Reply):
    subscription: SubscriptionOut | None


class PortalReply(Reply):
    url: str


class UserOut(Reply):
    id: str
    email: str | None
    tier: Tier
    status: AccountStatus
    stripeCustomerId: str | None


class PaymentActionOut(Reply):
    type: Literal["fix_payment", "confirm_payment"] = Field(
        description="fix_payment: a renewal's charge failed; confirm_payment: 3-D Secure asked"
    )
    invoiceId: str
    hostedInvoiceUrl: str | None = Field(description="Stripe's page to pay or confirm it")
    since: int = Field(description="ms since the epoch")


class MeReply(Reply):
    user: UserOut
    subscription: SubscriptionOut | None
    action: PaymentActionOut | None = Field(
        default=None, description="What the user must do about a payment; null: nothing"
    )
    subscriptions: list[SubscriptionOut] | None = Field(
        default=None,
        description="Every live subscription, when there is more than one (the user pays for "
        "each; cancel needs a subscriptionId then); null otherwise.",
    )


class FieldProblem(Reply):
    field: str
    message: str


def _optional_members(schema: dict[str, Any]) -> None:
    # Absent, not null, when they don't apply: no default in the document, so generated
    # clients type them as optional.
    schema["additionalProperties"] = False
    for member in schema.get("properties", {}).values():
        member.pop("default", None)


class ErrorBody(BaseModel):
    """`code` and `message` always; the other members only with the codes that use them."""

    model_config = ConfigDict(json_schema_extra=_optional_members)

    code: ErrorCode
    message: str = Field(description="Safe to show to a person")
    fields: list[FieldProblem] | None = Field(None, description="validation_error: what is wrong")
    field: str | None = Field(None, description="redirect_not_allowed: the URL field")
    upgrade: str | None = Field(None, description="quota_exceeded on the free plan: where to buy")
    portal: str | None = Field(None, description="subscription_exists: where to manage it")
    subscriptionId: str | None = None
    subscriptionIds: list[str] | None = Field(
        None, description="multiple_subscriptions: name one of these as subscriptionId"
    )
    declineCode: str | None = Field(None, description="card_declined: Stripe's reason")
    stripeCode: str | None = Field(None, description="Stripe's error code, when Stripe refused")
    retryAfter: int | None = Field(None, description="seconds, as in the Retry-After header")
    idempotencyKey: str | None = None
    replayed: bool | None = None
    generationsUsed: int | None = None
    generationsLimit: int | None = None
    generationsRemaining: int | None = None
    periodResetsAt: int | None = None


class ErrorReply(Reply):
    error: ErrorBody


# -- queries -------------------------------------------------------------------------------------


class Query(BaseModel):
    # Unknown query parameters (cache busters) are ignored; known ones must be well-formed.
    model_config = ConfigDict(extra="ignore")


class RefreshQuery(Query):
    refresh: bool = Field(
        False, description="true re-reads the subscription from Stripe (true/false, 1/0, yes/no)"
    )


# -- plans, health, webhooks ----------------------------------------------------------------------


class PriceOut(Reply):
    id: str = Field(description="Stripe price id; send it as priceId, or send `plan`")
    plan: Literal["monthly", "yearly"] | None = Field(
        description="The `plan` name checkout accepts for this price, if it has one"
    )
    lookupKey: str | None
    amount: int | None = Field(description="In the currency's smallest unit (cents)")
    currency: str = Field(description="ISO code, lower case")
    interval: Interval | None
    intervalCount: int | None
    productName: str | None
    active: bool


class PlanOut(Reply):
    id: Tier
    generationsPerPeriod: int | None = Field(description="null: unlimited; per seat")
    features: list[str]
    trialDays: int | None = Field(None, description="a first subscription starts with this trial")
    minSeats: int = 1
    maxSeats: int = 1
    prices: list[PriceOut] = Field(description="Empty for the free plan")


class CreditPackOut(Reply):
    priceId: str = Field(description="The one-time price (STRIPE_CREDIT_PACK_PRICE_ID)")
    generations: int = Field(description="Generations one pack adds (CREDIT_PACK_GENERATIONS)")
    amount: int | None = Field(description="In the currency's smallest unit (cents)")
    currency: str = Field(description="ISO code, lower case")


class PlansReply(Reply):
    plans: list[PlanOut]
    fetchedAt: Millis | None = Field(description="When the prices were read from Stripe")
    creditPack: CreditPackOut | None = Field(
        None,
        description="The credit pack POST /api/create-credit-pack-session sells; null: none",
    )


class HealthReply(Reply):
    status: Literal["ok"]
    database: Literal["ok"]


class WebhookReply(Reply):
    received: Literal[True]
    status: Literal["recorded", "duplicate"]


STRIPE_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A Stripe event, signed in the Stripe-Signature header",
    "required": ["id", "type", "data"],
    "properties": {
        "id": {"type": "string"},
        "type": {"type": "string"},
        "created": {"type": "integer"},
        "data": {"type": "object"},
    },
}
