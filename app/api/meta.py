"""Health, the OpenAPI document and its docs page."""

from __future__ import annotations

import functools
from typing import Any

from flask import Blueprint, Response
from sqlalchemy import text

from app.api.openapi import build_openapi
from app.database import end_read
from app.errors import database_unavailable
from app.extensions import db

bp = Blueprint("meta", __name__, url_prefix="/api")

DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Billing API docs</title>
<link rel="stylesheet" href="https://unpkg.com/swagger-ui-dist@5/swagger-ui.css"></head>
<body><div id="docs"><p>The machine-readable document is at
<a href="/api/openapi.json">/api/openapi.json</a>.</p></div>
<script src="https://unpkg.com/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>window.SwaggerUIBundle &&
  SwaggerUIBundle({url: "/api/openapi.json", dom_id: "#docs"});</script>
</body></html>"""


@bp.get("/health")
def health() -> dict[str, Any]:
    try:
        db.session.execute(text("SELECT 1"))
        end_read()
    except Exception as exc:
        raise database_unavailable() from exc
    return {"status": "ok", "database": "ok"}


@functools.cache
def _openapi_document() -> dict[str, Any]:
    return build_openapi()


@bp.get("/openapi.json")
def openapi_document() -> dict[str, Any]:
    return _openapi_document()


@bp.get("/docs")
def docs() -> Response:
    return Response(DOCS_PAGE, mimetype="text/html")
