"""The OpenAPI document is built from the routes' own declarations and says what they do:
operationIds, enums, either/or, limits, headers; the committed copy the TypeScript client is
generated from is current; and the response checker that guards the whole suite can fail."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, Response
from flask.testing import FlaskClient
from openapi_conformance import ConformanceChecker
from support import Billing, auth_headers

from app import create_app
from app.api.openapi import UndocumentedRoute, build_openapi
from app.errors import ERROR_CODES

COMMITTED = Path(__file__).resolve().parent.parent / "clients" / "typescript" / "openapi.json"


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m, p, op) for p, ops in document["paths"].items() for m, op in ops.items()]


def schema(document: dict[str, Any], name: str) -> dict[str, Any]:
    return document["components"]["schemas"][name]


def test_every_operation_has_a_unique_operation_id(app: Flask) -> None:
    ids = [op["operationId"] for _, _, op in operations(build_openapi(app))]
    assert len(ids) >= 14 and all(ids) and len(ids) == len(set(ids)), ids


def test_an_undocumented_api_route_fails_the_build() -> None:
    extra = create_app({"APP_ENV": "testing", "STRIPE_SECRET_KEY": "sk_test_x"})
    extra.add_url_rule("/api/secret-thing", "secret", lambda: {})
    with pytest.raises(UndocumentedRoute, match="/api/secret-thing"):
        build_openapi(extra)


def test_enums_for_tiers_statuses_and_error_codes(app: Flask) -> None:
    document = build_openapi(app)
    assert schema(document, "Tier")["enum"] == ["free", "pro"]
    assert "past_due" in schema(document, "SubscriptionStatus")["enum"]
    assert "free" in schema(document, "AccountStatus")["enum"]
    assert set(schema(document, "ErrorCode")["enum"]) == ERROR_CODES
    user = schema(document, "UserOut")["properties"]
    assert user["tier"] == {"$ref": "#/components/schemas/Tier"}
    assert user["status"] == {"$ref": "#/components/schemas/AccountStatus"}
    code = schema(document, "ErrorBody")["properties"]["code"]
    assert code == {"$ref": "#/components/schemas/ErrorCode"}


def test_tiers_follow_the_plans_file(tmp_path: Path) -> None:
    plans = {
        "plans": {
            "free": {"generationsPerPeriod": 3},
            "studio": {"prices": ["monthly"], "generationsPerPeriod": None},
        }
    }
    (tmp_path / "plans.json").write_text(json.dumps(plans))
    other = create_app(
        {
            "APP_ENV": "testing",
            "STRIPE_SECRET_KEY": "sk_test_x",
            "PLANS_FILE": str(tmp_path / "plans.json"),
        }
    )
    assert schema(build_openapi(other), "Tier")["enum"] == ["free", "studio"]


def test_either_or_limits_and_query_types(app: Flask) -> None:
    document = build_openapi(app)
    checkout = schema(document, "CreateCheckoutSessionRequest")
    assert checkout["anyOf"] == [{"required": ["priceId"]}, {"required": ["plan"]}]
    assert checkout["additionalProperties"] is False
    metadata = checkout["properties"]["metadata"]
    assert metadata["maxProperties"] == 49  # Stripe's 50 keys less our userId (issue 9)
    assert metadata["propertyNames"]["maxLength"] == 40
    assert metadata["additionalProperties"]["maxLength"] == 500
    consume = schema(document, "ConsumeGenerationsRequest")["properties"]
    assert consume["count"]["minimum"] == 1 and consume["count"]["maximum"] == 100
    assert consume["idempotencyKey"]["maxLength"] == 255
    params = document["paths"]["/api/subscription/{userId}"]["get"]["parameters"]
    assert {
        "name": "userId",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
    } in params
    refresh = next(p for p in params if p["name"] == "refresh")
    assert refresh["schema"]["type"] == "boolean"
    limit = next(p for p in document["paths"]["/api/usage"]["get"]["parameters"])
    assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == (1, 100)


def test_headers_and_statuses_are_documented(app: Flask) -> None:
    paths = build_openapi(app)["paths"]
    consume = paths["/api/usage/generations"]["post"]["responses"]
    for status in ("200", "402"):
        assert "Idempotent-Replayed" in consume[status]["headers"]
    assert (
        "Retry-After"
        in paths["/api/create-checkout-session"]["post"]["responses"]["503"]["headers"]
    )
    health = paths["/api/health"]["get"]
    assert "503" in health["responses"] and "security" not in health
    # Every response carries the request id, and every operation accepts the caller's.
    for path_item in paths.values():
        for operation in path_item.values():
            for response in operation["responses"].values():
                assert "X-Request-ID" in response["headers"]
            assert any(p["name"] == "X-Request-ID" for p in operation["parameters"])
    assert "security" not in paths["/api/plans"]["get"]
    assert paths["/api/me"]["get"]["security"] == [{"bearerAuth": []}]


@pytest.mark.parametrize("value", ["maybe", "2", ""])
def test_refresh_accepts_only_booleans(client: FlaskClient, value: str) -> None:
    reply = client.get(f"/api/me?refresh={value}", headers=auth_headers("refresh-user"))
    assert reply.status_code == 422, reply.get_json()
    assert reply.get_json()["error"]["fields"][0]["field"] == "refresh"


@pytest.mark.parametrize("value", ["true", "false", "1", "0", "yes", "no"])
def test_refresh_booleans_are_accepted(client: FlaskClient, value: str) -> None:
    assert client.get(f"/api/me?refresh={value}", headers=auth_headers("r-ok")).status_code == 200


def test_usage_limit_out_of_range_is_422(client: FlaskClient) -> None:
    reply = client.get("/api/usage?limit=0", headers=auth_headers("limit-user"))
    assert reply.status_code == 422 and reply.get_json()["error"]["fields"][0]["field"] == "limit"


@pytest.mark.slow  # a fault test: waits out Stripe's timeouts
def test_stripe_unreachable_is_503_with_retry_after(app: Flask, billing: Billing) -> None:
    saved = app.extensions["stripe_gateway"]
    from app.stripe.gateway import StripeGateway

    app.extensions["stripe_gateway"] = StripeGateway(
        "sk_test_x", api_version=app.config["STRIPE_API_VERSION"], api_base="http://127.0.0.1:9"
    )
    try:
        reply = app.test_client().post(
            "/api/create-checkout-session", json={"plan": "monthly"}, headers=auth_headers("u503")
        )
    finally:
        app.extensions["stripe_gateway"] = saved
    assert reply.status_code == 503 and reply.headers["Retry-After"] == "5"
    assert reply.get_json()["error"]["code"] == "payment_provider_unavailable"


def test_the_committed_document_is_current(app: Flask) -> None:
    """clients/typescript/openapi.json (the TypeScript types' source) matches the routes.
    Regenerate: `make openapi` (writes it and the types)."""
    default_app = create_app({"APP_ENV": "testing", "STRIPE_SECRET_KEY": "sk_test_x"})
    committed = json.loads(COMMITTED.read_text())
    assert committed == build_openapi(default_app), "run `make openapi` and commit the result"


def test_served_document_is_the_built_one(app: Flask, client: FlaskClient) -> None:
    assert client.get("/api/openapi.json").get_json() == build_openapi(app)


def test_docs_page_and_its_assets_are_served_locally(client: FlaskClient) -> None:
    page = client.get("/api/docs").get_data(as_text=True)
    assert "https://" not in page and "<script>" not in page
    for asset in ("swagger-ui.css", "swagger-ui-bundle.js", "docs-init.js"):
        reply = client.get(f"/api/docs/assets/{asset}")
        assert reply.status_code == 200 and len(reply.data) > 100, asset
    assert b"SwaggerUIBundle" in client.get("/api/docs/assets/swagger-ui-bundle.js").data
    assert client.get("/api/docs/assets/..%2Fsecrets").status_code == 404
    assert client.get("/api/docs/assets/index.html").status_code == 404


# -- the checker itself ---------------------------------------------------------------------------


class FakeRule:
    def __init__(self, rule: str) -> None:
        self.rule = rule
        self.arguments: set[str] = set()


def reply(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json", headers=headers)


def test_the_checker_catches_mismatches(app: Flask) -> None:
    checker = ConformanceChecker()
    me = FakeRule("/api/me")
    good_user = {
        "id": "u",
        "email": None,
        "tier": "free",
        "status": "free",
        "stripeCustomerId": None,
    }
    assert checker.check(app, "GET", me, reply({"user": good_user, "subscription": None})) == []
    wrong_tier = {"user": {**good_user, "tier": "gold"}, "subscription": None}
    assert "user/tier" in checker.check(app, "GET", me, reply(wrong_tier))[0]
    extra = {"user": {**good_user, "plan": "x"}, "subscription": None}
    assert checker.check(app, "GET", me, reply(extra))
    assert "status not documented" in checker.check(app, "GET", me, reply({}, status=409))[0]
    unknown_code = {"error": {"code": "teapot", "message": "no"}}
    assert checker.check(app, "GET", me, reply(unknown_code, status=401))
    undeclared = reply({"user": good_user, "subscription": None}, headers={"Retry-After": "1"})
    assert "not documented" in checker.check(app, "GET", me, undeclared)[0]
    no_retry = reply({"error": {"code": "payment_provider_unavailable", "message": "x"}}, 503)
    assert "Retry-After missing" in checker.check(app, "GET", me, no_retry)[0]
