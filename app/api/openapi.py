"""The OpenAPI 3.1 document, generated from the request and reply models."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from app.api import schemas


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    request: type[BaseModel] | None = None
    reply: type[BaseModel] | None = None
    authenticated: bool = True
    errors: tuple[int, ...] = ()


OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "post",
        "/api/create-checkout-session",
        "Start a Stripe Checkout for a Pro plan",
        schemas.CreateCheckoutSessionRequest,
        schemas.CheckoutSessionReply,
        errors=(400, 402, 404, 409, 422, 503),
    ),
    Operation(
        "post",
        "/api/retrieve-checkout-session",
        "Read a checkout session back after the redirect (and fulfil it)",
        schemas.RetrieveCheckoutSessionRequest,
        schemas.CheckoutSessionReply,
        errors=(400, 404, 422, 503),
    ),
    Operation(
        "post",
        "/api/cancel-subscription",
        "Cancel now or at the end of the period",
        schemas.CancelSubscriptionRequest,
        schemas.SubscriptionReply,
        errors=(400, 404, 409, 422, 503),
    ),
    Operation(
        "post",
        "/api/resume-subscription",
        "Undo a pending cancellation",
        schemas.ResumeSubscriptionRequest,
        schemas.SubscriptionReply,
        errors=(400, 404, 409, 422, 503),
    ),
    Operation(
        "post",
        "/api/create-portal-session",
        "Open Stripe's billing portal",
        schemas.CreatePortalSessionRequest,
        schemas.PortalReply,
        errors=(400, 404, 422, 503),
    ),
    Operation(
        "get",
        "/api/subscription/{userId}",
        "The caller's subscription, from our database (?refresh=true re-reads Stripe)",
        reply=schemas.SubscriptionReply,
        errors=(404, 503),
    ),
    Operation(
        "get",
        "/api/me",
        "The caller, their tier and subscription",
        reply=schemas.MeReply,
        errors=(503,),
    ),
    Operation(
        "get",
        "/api/me/entitlements",
        "What the caller may do now: plan, features, generations used and left",
        reply=schemas.EntitlementsReply,
    ),
    Operation(
        "post",
        "/api/usage/generations",
        "Consume generations atomically (402 with an upgrade hint when the quota is spent)",
        schemas.ConsumeGenerationsRequest,
        schemas.ConsumeGenerationsReply,
        errors=(400, 402, 409, 422),
    ),
    Operation(
        "get",
        "/api/usage",
        "The current usage period and its ledger entries (?limit=1..100, default 50)",
        reply=schemas.UsageReply,
        errors=(422,),
    ),
    Operation(
        "post",
        "/api/webhooks/stripe",
        "Stripe webhook receiver (signed by Stripe)",
        authenticated=False,
        errors=(400, 500),
    ),
    Operation("get", "/api/health", "Liveness and database check", authenticated=False),
)

ERROR_DESCRIPTIONS = {
    400: "Bad request (malformed JSON, unknown price, foreign redirect URL, Stripe rejected it)",
    401: "Missing, expired or invalid bearer token",
    402: "Card declined or quota spent",
    404: "Not found, or not the caller's",
    409: "Conflict with the current state",
    413: "The request body is larger than the configured cap",
    422: "Validation failed",
    429: "Too many requests (see Retry-After)",
    500: "Not processed; Stripe will retry",
    503: "Stripe is unreachable",
}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _collect(model: type[BaseModel], components: dict[str, Any]) -> None:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in schema.pop("$defs", {}).items():
        components[name] = definition
    components[model.__name__] = schema


def build_openapi(registered_operations: tuple[Operation, ...] = OPERATIONS) -> dict[str, Any]:
    components: dict[str, Any] = {}
    _collect(schemas.ErrorReply, components)
    paths: dict[str, Any] = {}
    for op in registered_operations:
        operation: dict[str, Any] = {"summary": op.summary, "responses": {}}
        if op.request is not None:
            _collect(op.request, components)
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _ref(op.request)}},
            }
        ok: dict[str, Any] = {"description": "OK"}
        if op.reply is not None:
            _collect(op.reply, components)
            ok["content"] = {"application/json": {"schema": _ref(op.reply)}}
        operation["responses"]["200"] = ok
        # Every signed-in route: 400 (hostile strings in the path or the token's claims) and 429
        # (rate limits); every body: 413 past the size cap.
        statuses = (*op.errors, 400, 401, 429) if op.authenticated else op.errors
        if op.request is not None or (not op.authenticated and op.method == "post"):
            statuses = (*statuses, 413)
        for status in sorted(set(statuses)):
            operation["responses"][str(status)] = {
                "description": ERROR_DESCRIPTIONS[status],
                "content": {"application/json": {"schema": _ref(schemas.ErrorReply)}},
            }
        if op.authenticated:
            operation["security"] = [{"bearerAuth": []}]
        if "{userId}" in op.path:
            operation["parameters"] = [
                {"name": "userId", "in": "path", "required": True, "schema": {"type": "string"}},
                {
                    "name": "refresh",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "boolean"},
                },
            ]
        paths.setdefault(op.path, {})[op.method] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "AI Creator Studio billing API", "version": "1.0.0"},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }
