"""Request and reply bodies of the plan-change routes (app/api/plan_changes.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from app.api.schemas import Body, Reply


class PreviewChangeRequest(Body):
    model_config = ConfigDict(
        json_schema_extra={"anyOf": [{"required": ["plan"]}, {"required": ["quantity"]}]}
    )

    subscriptionId: str | None = Field(default=None, min_length=1, max_length=255)
    plan: Literal["monthly", "yearly"] | None = None
    quantity: int | None = Field(default=None, strict=True, ge=1, le=10_000, description="Seats")


class ChangeSubscriptionRequest(PreviewChangeRequest):
    prorationDate: int | None = Field(
        default=None,
        strict=True,
        ge=0,
        description="ms; the preview's prorationDate, so the change charges what it showed",
    )


class PreviewLineOut(Reply):
    description: str
    amount: int = Field(description="cents; negative: a credit for unused time")
    proration: bool


class PlanChangePreviewOut(Reply):
    subscriptionId: str
    priceId: str
    quantity: int
    prorationDate: int = Field(description="ms; send it back with the change")
    currency: str
    amountDueNow: int = Field(description="cents charged when the change is made")
    nextInvoiceAmount: int = Field(description="cents of the next regular invoice")
    nextInvoiceAt: int | None = Field(description="ms")
    prorationAmount: int = Field(description="cents: the prorations' sum (credits negative)")
    lines: list[PreviewLineOut]


class PlanChangePreviewReply(Reply):
    preview: PlanChangePreviewOut
