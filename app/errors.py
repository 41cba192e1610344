"""Every error a client sees is JSON `{"error": {"code", "message"}}` with the right status.

The HTTP layer's own errors (`ApiError` and its subclasses: bad JSON, validation, tokens) carry
their status; the billing rules' errors (`app/billing/errors.py`) are mapped to one here, once.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, current_app, jsonify
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from app.billing import errors as billing
from app.observability.sentry import capture_exception

log = logging.getLogger(__name__)

# Every `error.code` a client can see (the OpenAPI document's ErrorCode enum). Tests validate
# each response of the suite against the document, so a code missing here fails them.
ERROR_CODES = frozenset(
    {
        # generic, by status
        "bad_request",
        "unauthorized",
        "payment_required",
        "not_found",
        "conflict",
        "validation_error",
        "internal_error",
        "payment_provider_unavailable",
        "service_unavailable",
        # from werkzeug's HTTP errors (their names)
        "method_not_allowed",
        "request_entity_too_large",
        "unsupported_media_type",
        "too_many_requests",
        # specific
        "invalid_json",
        "missing_token",
        "invalid_token",
        "token_expired",
        "user_not_found",
        "customer_not_found",
        "subscription_not_found",
        "checkout_session_not_found",
        "subscription_exists",
        "checkout_in_progress",
        "multiple_subscriptions",
        "idempotency_conflict",
        "payment_provider_busy",
        "subscription_ended",
        "unknown_plan",
        "unknown_price",
        "price_required",
        "price_mismatch",
        "redirect_not_allowed",
        "card_declined",
        "invalid_promotion_code",
        "invalid_quantity",
        "invalid_proration_date",
        "change_required",
        "payment_provider_rejected",
        "quota_exceeded",
        "idempotency_key_reused",
        "retry",
        "database_unavailable",
        "invalid_signature",
        "webhook_failed",
        # security hardening (issue 9)
        "invalid_path",
        "invalid_token_claims",
        "identity_provider_unavailable",
        "malformed_event",
        "payload_too_large",
        "rate_limited",
        # Sign in with GitHub (issue 22)
        "forbidden",
        "signin_not_configured",
        "invalid_state",
        "origin_not_allowed",
        "csrf_header_required",
        "missing_refresh_token",
        "invalid_refresh_token",
        "refresh_token_revoked",
        "refresh_token_reused",
        "refresh_token_expired",
    }
)


class ApiError(Exception):
    status = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if status:
            self.status = status
        self.details = details or {}
        self.headers: dict[str, str] = {}


class Unauthorized(ApiError):
    status = 401
    code = "unauthorized"


class ValidationFailed(ApiError):
    status = 422
    code = "validation_error"


class ServiceUnavailable(ApiError):
    status = 503
    code = "service_unavailable"


# Seconds a client is asked to wait after a 503 (the database or Stripe unavailable).
RETRY_AFTER_SECONDS = 5

# The database unreachable, a connection cut, a statement or lock timeout, no free connection
# in the pool: not the caller's fault, and worth retrying shortly.
DATABASE_UNAVAILABLE_ERRORS = (OperationalError, InterfaceError, PoolTimeout)


def database_unavailable() -> ApiError:
    return ApiError(
        "The database is unavailable. Try again shortly.",
        code="database_unavailable",
        status=503,
    )


# The status of each business error; the most specific class listed wins.
BILLING_STATUS: dict[type[billing.BillingError], int] = {
    billing.InvalidRequest: 400,
    billing.NotFound: 404,
    billing.Conflict: 409,
    billing.CardDeclined: 402,
    billing.ProviderUnavailable: 503,
    billing.BillingError: 400,
}


def billing_status(error: billing.BillingError) -> int:
    if isinstance(error, billing.ProviderRejected):
        return 404 if error.missing else 400
    return next(status for cls, status in BILLING_STATUS.items() if isinstance(error, cls))


def error_response(error: ApiError | billing.BillingError) -> tuple[Response, int]:
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    body.update(error.details)
    status = error.status if isinstance(error, ApiError) else billing_status(error)
    response = jsonify({"error": body})
    if status == 503:
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    if isinstance(error, ApiError):
        response.headers.update(error.headers)
    return response, status


def _discard_session() -> None:
    from app.db import rollback_quietly

    rollback_quietly()  # the connection may be gone; the pool replaces it


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(error: ApiError) -> tuple[Response, int]:
        return error_response(error)

    @app.errorhandler(billing.BillingError)
    def _billing_error(error: billing.BillingError) -> tuple[Response, int]:
        return error_response(error)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> tuple[Response, int]:
        status = error.code or 500
        code = (error.name or "error").lower().replace(" ", "_")
        return jsonify({"error": {"code": code, "message": error.description}}), status

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> tuple[Response, int]:
        from app.db import LockConflict, is_lock_conflict

        if isinstance(error, LockConflict) or is_lock_conflict(error):
            # Two requests raced for the same rows: nothing is down; the client retries.
            log.warning("lock conflict answered 503 retry: %s", type(error).__name__)
            _discard_session()
            return error_response(ApiError("Please try again.", code="retry", status=503))
        if isinstance(error, DATABASE_UNAVAILABLE_ERRORS):
            cause = type(error.__cause__ or error).__name__
            outage = current_app.extensions.get("db_outage")
            if outage is not None:  # one line when the outage starts, one when it ends
                outage.refused(cause)
            else:
                log.error("database unavailable: %s", cause)
            _discard_session()
            return error_response(database_unavailable())
        log.exception("unhandled error")
        capture_exception(error)
        message = "Something went wrong on our side. Please try again."
        return jsonify({"error": {"code": "internal_error", "message": message}}), 500
