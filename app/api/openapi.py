"""The OpenAPI 3.1 document, built from the routes themselves.

Each view declares its contract where it is defined, with `@documented(...)`: operationId,
request and reply models (pydantic), query model, error statuses and response headers. The
builder walks the app's URL map, so a route cannot exist without being in the document (the
build fails on an undocumented /api route) and the path and its parameters come from the rule.
Enums that depend on configuration (the tiers are the plan names) are filled in from the app.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flask import Flask
from pydantic import BaseModel
from werkzeug.routing import Rule

from app.api import schemas
from app.billing.plans import load_plans
from app.errors import ERROR_CODES
from app.signin.cookies import REFRESH_COOKIE

F = TypeVar("F", bound=Callable[..., Any])

ATTRIBUTE = "__openapi__"

ERROR_DESCRIPTIONS = {
    400: "Bad request (malformed JSON, unknown price, foreign redirect URL, Stripe rejected it)",
    401: "Missing, expired or invalid bearer token (on /auth/refresh: the refresh cookie)",
    402: "Card declined, or the generation quota is spent",
    403: "Refused: the request did not come from an allowed front-end origin (CSRF checks)",
    404: "Not found, or not the caller's",
    409: "Conflict with the current state",
    413: "The request body is larger than the configured cap",
    422: "Validation failed (the fields are listed)",
    429: "Too many requests; retry after the Retry-After seconds",
    500: "Not processed; Stripe will deliver it again",
    503: "A dependency (Stripe or the database) is unreachable; retry after Retry-After seconds",
}

HEADERS: dict[str, dict[str, Any]] = {
    "Location": {
        "description": "Where the browser goes next",
        "schema": {"type": "string", "format": "uri"},
    },
    "Set-Cookie": {
        "description": "Sets or clears an httpOnly sign-in cookie (scoped to /auth)",
        "schema": {"type": "string"},
    },
    "Idempotent-Replayed": {
        "description": "true when this is the stored first result for the idempotencyKey",
        "schema": {"type": "string", "enum": ["true"]},
    },
    "Retry-After": {
        "description": "Seconds to wait before trying again",
        "schema": {"type": "integer", "minimum": 0},
    },
    "X-Request-ID": {
        "description": "The request's id, on every response: the caller's X-Request-ID when it "
        "is a sane token, else one the API made. Every log line and audit entry of the request "
        "carries it; quote it when reporting a problem.",
        "schema": {"type": "string"},
    },
}

# Sent by a proxy or the client to follow one request through our logs (else we make one).
REQUEST_ID_PARAMETER: dict[str, Any] = {
    "name": "X-Request-ID",
    "in": "header",
    "required": False,
    "description": "Your id for this request (letters, digits and ._:/+=-, up to 128); echoed "
    "back and put on every log line of the request. Anything else is replaced by our own id.",
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:/+=-]{1,128}$"},
}


SECURITY_SCHEMES: dict[str, Any] = {
    "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
    "refreshCookie": {
        "type": "apiKey",
        "in": "cookie",
        "name": REFRESH_COOKIE,
        "description": "The httpOnly refresh cookie GitHub sign-in sets (path /auth)",
    },
}


@dataclass(frozen=True)
class Operation:
    operation_id: str
    summary: str
    request: type[BaseModel] | None = None
    request_schema: dict[str, Any] | None = None  # a body that is not ours (Stripe's event)
    reply: type[BaseModel] | None = None
    reply_schema: dict[str, Any] | None = None
    query: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()
    public: bool = False
    tags: tuple[str, ...] = ()
    description: str | None = None
    # status -> header names from HEADERS (503 and 429 always carry Retry-After)
    headers: dict[int, tuple[str, ...]] = field(default_factory=dict)
    request_headers: tuple[dict[str, Any], ...] = ()
    hidden: bool = False  # a page or asset, not part of the API
    # Any route that touches the database answers 503 database_unavailable when it is down.
    uses_database: bool = True
    # A browser navigation answered with a 303 (described here) instead of a 200 body.
    redirect: str | None = None
    # Authenticated by the refresh cookie (the refreshCookie scheme), not a bearer token.
    cookie_auth: bool = False


def documented(**spec: Any) -> Callable[[F], F]:
    """Declare a route's contract; `build_openapi` reads it from the view function."""
    operation = Operation(**spec)

    def decorate(view: F) -> F:
        setattr(view, ATTRIBUTE, operation)
        return view

    return decorate


def hidden(view: F) -> F:
    """A route that is deliberately not in the document (pages and their assets)."""
    setattr(view, ATTRIBUTE, Operation(operation_id="", summary="", hidden=True))
    return view


class UndocumentedRoute(RuntimeError):
    pass


def operation_of(app: Flask, rule: Rule) -> Operation | None:
    return getattr(app.view_functions.get(rule.endpoint), ATTRIBUTE, None)


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def openapi_path(rule: Rule) -> str:
    path = rule.rule
    for argument in rule.arguments:
        for converter in ("", "string:"):
            path = path.replace(f"<{converter}{argument}>", "{" + camel(argument) + "}")
    return path


def _api_rules(app: Flask) -> Iterable[tuple[Rule, str]]:
    """Every /api route (each must be documented) and any other route that is (probes)."""
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if not rule.rule.startswith("/api/") and operation_of(app, rule) is None:
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            yield rule, method.lower()


class _Components:
    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {}

    def ref(self, model: type[BaseModel]) -> dict[str, str]:
        schema = _link(model.model_json_schema(ref_template="#/components/schemas/{model}"))
        for name, definition in schema.pop("$defs", {}).items():
            self.schemas[name] = definition
        self.schemas[model.__name__] = schema
        return {"$ref": f"#/components/schemas/{model.__name__}"}


def _link(node: Any) -> Any:
    """Replace the schemas' `{"x-component": Name}` markers with references to components."""
    if isinstance(node, dict):
        if "x-component" in node:
            linked = {"$ref": f"#/components/schemas/{node['x-component']}"}
            if "description" in node:
                linked["description"] = node["description"]
            return linked
        return {key: _link(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_link(item) for item in node]
    return node


def _parameters(rule: Rule, op: Operation, components: _Components) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = [
        {"name": camel(arg), "in": "path", "required": True, "schema": {"type": "string"}}
        for arg in sorted(rule.arguments)
    ]
    if op.query is not None:
        schema = _link(op.query.model_json_schema(ref_template="#/components/schemas/{model}"))
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            parameter: dict[str, Any] = {
                "name": name,
                "in": "query",
                "required": name in required,
                "schema": {k: v for k, v in prop.items() if k not in ("title", "description")},
            }
            if prop.get("description"):
                parameter["description"] = prop["description"]
            parameters.append(parameter)
    parameters.extend(op.request_headers)
    parameters.append(REQUEST_ID_PARAMETER)
    return parameters


def _operation(rule: Rule, op: Operation, components: _Components) -> dict[str, Any]:
    out: dict[str, Any] = {"operationId": op.operation_id, "summary": op.summary}
    if op.description:
        out["description"] = op.description
    if op.tags:
        out["tags"] = list(op.tags)
    parameters = _parameters(rule, op, components)
    if parameters:
        out["parameters"] = parameters
    if op.request is not None or op.request_schema is not None:
        if op.request is not None:
            body_schema = components.ref(op.request)
            required = bool(op.request.model_json_schema().get("required"))
        else:
            body_schema, required = op.request_schema or {}, True
        out["requestBody"] = {
            "required": required,
            "content": {"application/json": {"schema": body_schema}},
        }
    ok: dict[str, Any] = {"description": op.redirect or "OK"}
    if op.reply is not None:
        ok["content"] = {"application/json": {"schema": components.ref(op.reply)}}
    elif op.reply_schema is not None:
        ok["content"] = {"application/json": {"schema": op.reply_schema}}
    responses: dict[str, Any] = {"303" if op.redirect else "200": ok}
    statuses = set(op.errors) | ({401} if not op.public else set())
    if not op.public:
        # Every signed-in route: 400 (hostile strings in the path or the token's claims) and
        # 429 (rate limits, failed sign-ins); every body: 413 past the size cap.
        statuses |= {400, 429}
    if op.request is not None or op.request_schema is not None:
        statuses.add(413)
    if op.uses_database:
        statuses.add(503)
    error_ref = components.ref(schemas.ErrorReply)
    for status in sorted(statuses):
        responses[str(status)] = {
            "description": ERROR_DESCRIPTIONS[status],
            "content": {"application/json": {"schema": error_ref}},
        }
    for code, response in responses.items():
        names = set(op.headers.get(int(code), ())) | {"X-Request-ID"}
        if code in ("429", "503"):
            names.add("Retry-After")
        if names:
            response["headers"] = {
                name: {"$ref": f"#/components/headers/{name}"} for name in sorted(names)
            }
    out["responses"] = responses
    if op.cookie_auth:
        out["security"] = [{"refreshCookie": []}]
    elif not op.public:
        out["security"] = [{"bearerAuth": []}]
    return out


def build_openapi(app: Flask) -> dict[str, Any]:
    """The document for this app's routes and configuration; raises on an undocumented route."""
    components = _Components()
    paths: dict[str, Any] = {}
    for rule, method in _api_rules(app):
        op = operation_of(app, rule)
        if op is None:
            raise UndocumentedRoute(f"{method.upper()} {rule.rule} has no @documented contract")
        if op.hidden:
            continue
        paths.setdefault(openapi_path(rule), {})[method] = _operation(rule, op, components)
    plans = load_plans(app.config.get("PLANS_FILE") or "")
    components.schemas.update(
        {
            "Tier": {
                "type": "string",
                "description": "The plan the user has now (plan names from the configuration)",
                "enum": [plan.id for plan in (plans.free, *plans.paid)],
            },
            "SubscriptionStatus": {
                "type": "string",
                "description": "Stripe's subscription status",
                "enum": list(schemas.SUBSCRIPTION_STATUSES),
            },
            "AccountStatus": {
                "type": "string",
                "description": "The deciding subscription's status, or free",
                "enum": [*schemas.SUBSCRIPTION_STATUSES, "free"],
            },
            "ErrorCode": {
                "type": "string",
                "description": "Stable machine-readable error codes",
                "enum": sorted(ERROR_CODES),
            },
        }
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "AI Creator Studio billing API",
            "version": "1.0.0",
            "description": "Times are milliseconds since the epoch. Errors are "
            '`{"error": {"code", "message", ...}}`.',
        },
        "paths": paths,
        "components": {
            "schemas": dict(sorted(components.schemas.items())),
            "headers": {
                name: {"description": h["description"], "schema": h["schema"]}
                for name, h in HEADERS.items()
            },
            "securitySchemes": SECURITY_SCHEMES,
        },
    }
