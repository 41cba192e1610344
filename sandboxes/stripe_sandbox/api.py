"""Serving /v1: auth, parameters, idempotency, dispatch, expand, request log."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import traceback
from typing import Any

from werkzeug.wrappers import Request, Response

from . import resources  # noqa: F401  (registers routes)
from .billing.includes import includable
from .context import API_VERSION, Ctx
from .errors import StripeError
from .host import Host
from .ids import new_id
from .routes import match
from .wire import apply_expand, expand_paths, parse_form

log = logging.getLogger("stripe_sandbox")

_KEY_RE = re.compile(r"^(sk|rk)_test_[0-9A-Za-z_]+$")

NO_KEY = (
    "You did not provide an API key. You need to provide your API key in the "
    "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
    "YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, or "
    "we can help at https://support.stripe.com/."
)


def api_key(request: Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    if header.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(header[6:].strip()).decode()
        except (binascii.Error, UnicodeDecodeError):
            return ""
        return decoded.split(":", 1)[0]
    return None if not header else ""


def check_auth(request: Request) -> None:
    key = api_key(request)
    if key is None:
        raise StripeError(401, NO_KEY)
    if not _KEY_RE.match(key):
        shown = (key[:8] + "*" * 4 + key[-4:]) if len(key) > 12 else "****"
        raise StripeError(
            401,
            f"Invalid API Key provided: {shown}",
            code="api_key_invalid" if key.startswith(("sk_", "rk_")) else None,
        )


def request_params(request: Request) -> dict[str, Any]:
    pairs = list(request.args.items(multi=True))
    if request.method in ("POST", "PUT", "PATCH"):
        pairs += list(request.form.items(multi=True))
    return parse_form(pairs)


def handle_api(sb: Host, request: Request) -> Response:
    request_id = new_id("req")
    idem_key = request.headers.get("Idempotency-Key")
    headers: dict[str, str] = {
        "Request-Id": request_id,
        "Stripe-Version": request.headers.get("Stripe-Version") or API_VERSION,
        "Access-Control-Allow-Origin": "*",
        "Cache-Control": "no-cache, no-store",
    }
    if idem_key:
        headers["Idempotency-Key"] = idem_key
    raw_params: dict[str, Any] = {}
    method = request.method.upper()
    try:
        check_auth(request)
        raw_params = request_params(request)
        status, body, replayed = _answer(sb, request, raw_params, request_id, idem_key)
        if replayed:
            headers["Idempotent-Replayed"] = "true"
    except StripeError as err:
        status, body = err.status, err.body()
    except Exception as exc:  # a sandbox bug: still answer in Stripe's shape
        log.error("stripe_sandbox internal error: %s", traceback.format_exc())
        message = f"An unexpected error occurred in the Stripe sandbox: {type(exc).__name__}: {exc}"
        status, body = 500, StripeError(500, message, type="api_error").body()
    if status >= 400:
        body["error"].setdefault("request_log_url", None)
        headers["Stripe-Should-Retry"] = "false"
    sb.log_request(
        {
            "method": method,
            "path": request.path,
            "params": raw_params,
            "status": status,
            "idempotency_key": idem_key,
        }
    )
    return Response(
        json.dumps(body, indent=2), status=status, headers=headers, content_type="application/json"
    )


def _answer(
    sb: Host,
    request: Request,
    raw_params: dict[str, Any],
    request_id: str,
    idem_key: str | None,
) -> tuple[int, dict[str, Any], bool]:
    """``(status, body, replayed)``: a stored idempotent answer, or the operation's."""
    method = request.method.upper()
    with sb.store.lock:
        replay = _idempotent_replay(sb, method, request.path, raw_params, idem_key)
        if replay is not None:
            return replay[0], replay[1], True
        status, body = _run(sb, request, method, raw_params, request_id, idem_key)
        if idem_key and method == "POST" and status in (200, 402):
            entry = {
                "method": method,
                "path": request.path,
                "params": _canonical(raw_params),
                "status": status,
                "body": body,
            }
            _remember(sb, idem_key, entry)
        if method != "GET":
            sb.store.save()
    return status, body, False


IDEMPOTENCY_KEYS_KEPT = 2000


def _remember(sb: Host, key: str, entry: dict[str, Any]) -> None:
    """Keep the response for ``key`` (the most recent keys only, as Stripe keeps 24 h)."""
    cache = sb.store.idempotency
    cache[key] = entry
    while len(cache) > IDEMPOTENCY_KEYS_KEPT:
        cache.pop(next(iter(cache)))


def _canonical(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True)


def _idempotent_replay(
    sb: Host, method: str, path: str, params: dict[str, Any], key: str | None
) -> tuple[int, dict[str, Any]] | None:
    if not key or method != "POST":
        return None
    entry = sb.store.idempotency.get(key)
    if entry is None:
        return None
    if entry["method"] != method or entry["path"] != path or entry["params"] != _canonical(params):
        raise StripeError(
            400,
            "Keys for idempotent requests can only be used with the same "
            "parameters they were first used with. Try using a key other "
            f"than '{key}' if you meant to execute a different request.",
            type="idempotency_error",
        )
    return entry["status"], entry["body"]


def _run(
    sb: Host,
    request: Request,
    method: str,
    raw_params: dict[str, Any],
    request_id: str,
    idem_key: str | None,
) -> tuple[int, dict[str, Any]]:
    handler, path_args, _known = match(method, request.path)
    if handler is None:
        raise StripeError(
            404,
            f"Unrecognized request URL ({method}: {request.path}). Please "
            "see https://stripe.com/docs or we can help at "
            "https://support.stripe.com/.",
        )
    params = dict(raw_params)
    expand = expand_paths(params.pop("expand", None))
    base_url = sb.base_url_for(request)
    sb.run_due(base_url)
    ctx = Ctx(sb.store, sb.config, base_url, request_id, idem_key)
    sb.store.begin()
    try:
        result = handler(ctx, params, **path_args)
        apply_expand(
            result, expand, sb.store.render_id, lambda obj, field: includable(sb.store, obj, field)
        )
        sb.store.commit()
        return 200, result
    except StripeError as err:
        # a declined payment is a recorded attempt; anything else changes nothing
        if err.status == 402:
            sb.store.commit()
        else:
            sb.store.rollback()
            ctx.events.clear()
        raise
    except Exception:
        sb.store.rollback()
        ctx.events.clear()
        raise
    finally:
        sb.publish(ctx)
