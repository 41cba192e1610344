"""Request and reply bodies; the OpenAPI document is generated from these models.

Field names are the guide's (camelCase), so the existing front end keeps working.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from app.safe_text import has_unsafe_chars

# Stripe's metadata limits: 50 keys (we add userId, so 49 are the caller's), keys up to 40
# characters, values up to 500.
MAX_METADATA_KEYS = 49
MetadataKey = Annotated[str, StringConstraints(min_length=1, max_length=40)]
MetadataValue = Annotated[str, StringConstraints(max_length=500)]


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


class CreateCheckoutSessionRequest(Body):
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
    metadata: dict[MetadataKey, MetadataValue] = Field(
        default_factory=dict,
        max_length=MAX_METADATA_KEYS,
        description="Stripe's limits: keys 1-40 characters, values up to 500, 49 keys.",
    )


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


class CheckoutSessionOut(BaseModel):
    id: str
    url: str | None = None
    status: str | None = None
    customerId: str | None = None
    subscriptionId: str | None = None
    paymentStatus: str | None = None


class CheckoutSessionReply(BaseModel):
    session: CheckoutSessionOut


class SubscriptionOut(BaseModel):
    id: str
    customerId: str | None
    status: str | None
    tier: str
    priceId: str | None
    interval: str | None
    currentPeriodStart: int | None = Field(description="ms since the epoch")
    currentPeriodEnd: int | None = Field(description="ms since the epoch")
    cancelAtPeriodEnd: bool
    cancelAt: int | None
    canceledAt: int | None
    trialEnd: int | None


class SubscriptionReply(BaseModel):
    subscription: SubscriptionOut | None


class PortalReply(BaseModel):
    url: str


class UserOut(BaseModel):
    id: str
    email: str | None
    tier: str
    status: str
    stripeCustomerId: str | None


class MeReply(BaseModel):
    user: UserOut
    subscription: SubscriptionOut | None
    subscriptions: list[SubscriptionOut] | None = Field(
        default=None,
        description="Every live subscription, when there is more than one (the user pays for "
        "each; cancel needs a subscriptionId then); null otherwise.",
    )


# -- entitlements and usage ------------------------------------------------------------------------

MAX_GENERATIONS_PER_REQUEST = 100


class ConsumeGenerationsRequest(Body):
    count: int = Field(
        default=1, strict=True, ge=1, le=MAX_GENERATIONS_PER_REQUEST, description="All or nothing"
    )
    idempotencyKey: str = Field(
        min_length=1,
        max_length=255,
        description="Unique per attempt; a retry with the same key replays the first result.",
    )


class EntitlementsReply(BaseModel):
    tier: str = Field(description="The plan the user has now: free, or the paid plan's name")
    status: str = Field(description="The subscription's Stripe status, or free")
    features: list[str]
    generationsUsed: int
    generationsLimit: int | None = Field(description="null: unlimited")
    generationsRemaining: int | None = Field(description="null: unlimited")
    periodStart: int | None = Field(description="ms since the epoch")
    periodResetsAt: int | None = Field(description="ms since the epoch; usage starts again at 0")
    accessEndsAt: int | None = Field(
        description="ms; when the paid plan is already known to end (pending cancel, grace)"
    )


class ConsumeGenerationsReply(BaseModel):
    granted: int
    idempotencyKey: str
    replayed: bool = Field(description="true: the first result for this key, not counted again")
    generationsUsed: int
    generationsLimit: int | None
    generationsRemaining: int | None
    periodResetsAt: int | None


class UsagePeriodOut(BaseModel):
    start: int | None
    resetsAt: int | None
    used: int
    limit: int | None
    remaining: int | None


class UsageEntryOut(BaseModel):
    id: int
    kind: Literal["consume", "reset"]
    count: int
    result: str = Field(description="granted, refused, or reset")
    reason: str | None = Field(description="for resets: renewal, free_period or plan_change")
    idempotencyKey: str | None
    generationsUsed: int | None = Field(description="the counter after this entry")
    generationsLimit: int | None
    createdAt: int = Field(description="ms since the epoch")


class UsageReply(BaseModel):
    tier: str
    period: UsagePeriodOut
    entries: list[UsageEntryOut] = Field(description="this period's ledger, newest first")


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorReply(BaseModel):
    error: ErrorBody
