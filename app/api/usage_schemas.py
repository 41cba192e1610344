"""Request and reply bodies of the entitlement and usage routes (app/api/usage.py)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from app.api.schemas import AccountStatus, Body, Query, Reply, Tier, one_of

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


class EntitlementsReply(Reply):
    tier: Tier
    status: AccountStatus
    features: list[str]
    generationsUsed: int
    generationsLimit: int | None = Field(description="null: unlimited")
    generationsRemaining: int | None = Field(description="null: unlimited")
    periodStart: int | None = Field(description="ms since the epoch")
    periodResetsAt: int | None = Field(description="ms since the epoch; usage starts again at 0")
    accessEndsAt: int | None = Field(
        description="ms; when the paid plan is already known to end (pending cancel, grace)"
    )
    credits: int = Field(
        default=0, description="generations bought in credit packs, used once the quota is"
    )


class ConsumeGenerationsReply(Reply):
    granted: int
    idempotencyKey: str
    replayed: bool = Field(description="true: the first result for this key, not counted again")
    generationsUsed: int
    generationsLimit: int | None
    generationsRemaining: int | None
    periodResetsAt: int | None


class UsagePeriodOut(Reply):
    start: int | None
    resetsAt: int | None
    used: int
    limit: int | None
    remaining: int | None


class UsageEntryOut(Reply):
    id: int
    kind: Literal["consume", "reset"]
    count: int
    result: Annotated[str, one_of("granted", "refused", "reset")]
    reason: Annotated[str, one_of("renewal", "free_period", "plan_change")] | None = Field(
        description="for resets"
    )
    idempotencyKey: str | None
    generationsUsed: int | None = Field(description="the counter after this entry")
    generationsLimit: int | None
    createdAt: int = Field(description="ms since the epoch")


class UsageReply(Reply):
    tier: Tier
    period: UsagePeriodOut
    entries: list[UsageEntryOut] = Field(description="this period's ledger, newest first")


class UsageQuery(Query):
    limit: int = Field(50, ge=1, le=100, description="How many ledger entries, newest first")
