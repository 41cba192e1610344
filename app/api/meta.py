"""Probes (/healthz, /readyz, the older /api/health), /metrics, the OpenAPI document and its
docs page (Swagger UI served from local assets)."""

from __future__ import annotations

import hmac
import importlib.util
import logging
import os
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request, send_from_directory

from app.api.openapi import build_openapi, documented, hidden
from app.api.schemas import HealthReply
from app.billing.errors import NotFound
from app.errors import Unauthorized, database_unavailable
from app.health import database_answers, readiness
from app.observability import metrics

log = logging.getLogger(__name__)

bp = Blueprint("meta", __name__, url_prefix="/api")
# Operations' endpoints at the root, outside the API document (not the clients' contract).
probes = Blueprint("probes", __name__)

DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Billing API docs</title>
<link rel="stylesheet" href="/api/docs/assets/swagger-ui.css"></head>
<body><div id="docs"><p>The machine-readable document is at
<a href="/api/openapi.json">/api/openapi.json</a>.</p></div>
<script src="/api/docs/assets/swagger-ui-bundle.js"></script>
<script src="/api/docs/assets/docs-init.js"></script>
</body></html>"""

OWN_STATIC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "static")
SWAGGER_ASSETS = ("swagger-ui.css", "swagger-ui-bundle.js")


def swagger_ui_directory() -> str:
    """Swagger UI 5 as shipped in PyPI's swagger-ui-py (its static files only)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("swagger-ui-py is not installed")
    return os.path.join(next(iter(spec.submodule_search_locations)), "static")


@bp.get("/health")
@documented(
    operation_id="getHealth",
    summary="Liveness and database check",
    tags=("meta",),
    public=True,
    reply=HealthReply,
    errors=(503,),
)
def health() -> dict[str, Any]:
    if not database_answers():
        raise database_unavailable()
    return HealthReply(status="ok", database="ok").model_dump()


@bp.get("/openapi.json")
@documented(
    operation_id="getOpenApiDocument",
    summary="This document",
    tags=("meta",),
    public=True,
    reply_schema={"type": "object"},
    uses_database=False,
)
def openapi_document() -> dict[str, Any]:
    document = current_app.extensions.get("openapi_document")
    if document is None:
        document = current_app.extensions["openapi_document"] = build_openapi(current_app)
    return document


@bp.get("/docs")
@hidden
def docs() -> Response:
    return Response(DOCS_PAGE, mimetype="text/html")


@bp.get("/docs/assets/<name>")
@hidden
def docs_asset(name: str) -> Response:
    if name == "docs-init.js":
        return send_from_directory(OWN_STATIC, name, max_age=3600)
    if name not in SWAGGER_ASSETS:
        raise NotFound("No such asset.")
    return send_from_directory(swagger_ui_directory(), name, max_age=86400)


@probes.get("/healthz")
@hidden
def healthz() -> dict[str, Any]:
    """Liveness: the process answers. No I/O, so a slow database never restarts the worker."""
    return {"status": "ok"}


@probes.get("/readyz")
@hidden
def readyz() -> tuple[Response, int]:
    """Readiness: the database answers (within READYZ_TIMEOUT_SECONDS) and its schema is at
    this code's migration head. Redis is detail only: the rate limits fail open without it; so
    is the webhook backlog (taking the instance out would not apply events any sooner)."""
    state = readiness()
    detail: dict[str, Any] = {} if state.redis is None else {"redis": state.redis}
    if state.webhooks is not None:  # the apply lag: how long the oldest pending event waited
        detail["webhooks"] = state.webhooks.as_detail()
    if state.database != "ok":
        return jsonify({"status": "unavailable", "database": state.database, **detail}), 503
    if state.pending_heads:
        body = {"status": "unavailable", "database": "ok", "migrations": "pending", **detail}
        return jsonify({**body, "expectedHeads": state.pending_heads}), 503
    return jsonify({"status": "ok", "database": "ok", "migrations": "at head", **detail}), 200


@probes.get("/metrics")
@hidden
def metrics_endpoint() -> Response:
    token = current_app.config.get("METRICS_TOKEN") or ""
    if token:
        sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(sent.encode(), token.encode()):
            raise Unauthorized("A valid metrics token is required.", code="invalid_token")
    body, content_type = metrics.render()
    return Response(body, content_type=content_type)
