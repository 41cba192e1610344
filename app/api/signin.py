"""Sign in with GitHub (/auth/github/start, /auth/github/callback) and the refresh cookie's
routes (/auth/refresh, /auth/logout). The flow itself is app/signin/."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, redirect, request
from werkzeug.wrappers import Response

from app.api.openapi import documented
from app.api.parsing import parse_query
from app.api.signin_schemas import (
    GitHubCallbackQuery,
    SessionReply,
    SignOutReply,
    StartSignInQuery,
)
from app.errors import ApiError
from app.ratelimit import count_failed_auth, enforce_ip
from app.signin.cookies import (
    BROWSER_COOKIE,
    CSRF_HEADER,
    REFRESH_COOKIE,
    browser_cookie,
    check_cookie_request,
    expired_browser_cookie,
    expired_refresh_cookie,
    refresh_cookie,
)
from app.signin.flow import finish_signin, start_signin
from app.signin.sessions import Renewal, SessionRefused, end_session, renew_session
from app.signin.settings import github_configured

bp = Blueprint("signin", __name__, url_prefix="/auth")

COOKIE_ROUTE_HEADERS = (
    {
        "name": CSRF_HEADER,
        "in": "header",
        "required": True,
        "description": "Any value (e.g. fetch): a header an HTML form can't send. The request "
        "must also come from a FRONTEND_URL origin (Origin header), with credentials.",
        "schema": {"type": "string", "minLength": 1},
    },
)


def _require_github() -> None:
    if not github_configured(current_app.config):
        raise ApiError(
            "Sign in with GitHub is not set up on this server.",
            code="signin_not_configured",
            status=404,
        )


@bp.get("/github/start")
@documented(
    operation_id="startGitHubSignIn",
    summary="Sign in with GitHub: send the browser here (a navigation, not a fetch)",
    description="Answers 303 to GitHub's authorize page (state and PKCE S256). After GitHub, "
    "the browser lands on `returnTo` with no token; the front end then calls POST "
    "/auth/refresh with credentials to get an access token.",
    tags=("auth",),
    public=True,
    query=StartSignInQuery,
    redirect="To GitHub's authorize page; sets the short-lived sign-in binding cookie",
    headers={303: ("Location", "Set-Cookie")},
    errors=(400, 404, 422, 429, 503),
)
def github_start() -> Response:
    _require_github()
    enforce_ip("signin", "RATE_LIMIT_SIGNIN")
    query = parse_query(StartSignInQuery)
    started = start_signin(current_app.config, query.returnTo)
    response = redirect(started.authorize_url, code=303)
    response.headers.add("Set-Cookie", browser_cookie(current_app.config, started.browser_key))
    return response


@bp.get("/github/callback")
@documented(
    operation_id="finishGitHubSignIn",
    summary="Where GitHub sends the browser back (register it as the OAuth app's callback URL)",
    description="Answers 303 to the `returnTo` of the sign-in, with the refresh cookie set, or "
    "with `?signinError=signin_denied|signin_failed|identity_provider_unavailable` and no "
    "cookie. A state that is unknown, used, expired or from another browser is a 400 "
    "`invalid_state` (nothing to trust the landing URL of).",
    tags=("auth",),
    public=True,
    query=GitHubCallbackQuery,
    redirect="To the sign-in's returnTo (never with a token in the URL)",
    headers={303: ("Location", "Set-Cookie")},
    errors=(400, 404, 422, 429, 503),
)
def github_callback() -> Response:
    _require_github()
    enforce_ip("signin", "RATE_LIMIT_SIGNIN")
    config = current_app.config
    query = parse_query(GitHubCallbackQuery)
    # An invalid state (InvalidState, 400) leaves the binding cookie alone: it may be this
    # browser's own sign-in under way, which a forged callback must not spoil.
    landing = finish_signin(
        config,
        state=query.state,
        browser_key=request.cookies.get(BROWSER_COOKIE),
        code=query.code,
        error=query.error,
    )
    response = redirect(landing.location, code=303)
    response.headers.add("Set-Cookie", expired_browser_cookie(config))
    if landing.renewal is not None and landing.renewal.refresh_token:
        cookie = refresh_cookie(
            config, landing.renewal.refresh_token, ends=landing.renewal.session_ends
        )
        response.headers.add("Set-Cookie", cookie)
    return response


@bp.post("/refresh")
@documented(
    operation_id="refreshSession",
    summary="A new access token for the signed-in browser (the refresh cookie; rotates it)",
    description="Call with `credentials: 'include'` from a FRONTEND_URL origin and the "
    "X-Requested-With header. 401 `missing_refresh_token` means nobody is signed in; the "
    "other 401 codes (`invalid_refresh_token`, `refresh_token_revoked`, "
    "`refresh_token_reused`, `refresh_token_expired`) clear the cookie: sign in again.",
    tags=("auth",),
    public=True,
    cookie_auth=True,
    reply=SessionReply,
    request_headers=COOKIE_ROUTE_HEADERS,
    headers={200: ("Set-Cookie",), 401: ("Set-Cookie",)},
    errors=(401, 403, 429, 503),
)
def refresh() -> Response:
    enforce_ip("session", "RATE_LIMIT_SESSION")
    config = current_app.config
    check_cookie_request(request.headers, config)
    try:
        renewal = renew_session(config, request.cookies.get(REFRESH_COOKIE))
    except SessionRefused as exc:
        refused = ApiError(exc.message, code=exc.code, status=401)
        if exc.code != "missing_refresh_token":
            # A cookie that was presented and refused counts as a failed sign-in; a page
            # asking whether anyone is signed in (no cookie) does not.
            count_failed_auth()
            refused.headers["Set-Cookie"] = expired_refresh_cookie(config)
        raise refused from exc
    response = jsonify(_session_reply(renewal))
    if renewal.refresh_token:
        response.headers.add(
            "Set-Cookie", refresh_cookie(config, renewal.refresh_token, ends=renewal.session_ends)
        )
    return response


@bp.post("/logout")
@documented(
    operation_id="signOut",
    summary="Sign out: end the session of the refresh cookie and clear it",
    description="Same calling rules as /auth/refresh. Signing out twice is fine. Access "
    "tokens already handed out stay valid until they expire (AUTH_ACCESS_TOKEN_SECONDS): "
    "drop yours from memory.",
    tags=("auth",),
    public=True,
    cookie_auth=True,
    reply=SignOutReply,
    request_headers=COOKIE_ROUTE_HEADERS,
    headers={200: ("Set-Cookie",)},
    errors=(403, 429, 503),
)
def logout() -> Response:
    enforce_ip("session", "RATE_LIMIT_SESSION")
    config = current_app.config
    check_cookie_request(request.headers, config)
    end_session(request.cookies.get(REFRESH_COOKIE))
    response = jsonify(SignOutReply(signedOut=True).model_dump())
    response.headers.add("Set-Cookie", expired_refresh_cookie(config))
    return response


def _session_reply(renewal: Renewal) -> dict[str, Any]:
    access = renewal.access
    return SessionReply.model_validate(
        {
            "accessToken": access.token,
            "tokenType": "Bearer",
            "expiresIn": access.lifetime,
            "expiresAt": access.expires_at * 1000,
            "sessionExpiresAt": int(renewal.session_ends.timestamp() * 1000),
            "user": {
                "id": renewal.user.id,
                "login": renewal.user.login,
                "name": renewal.user.name,
                "email": renewal.user.email,
            },
        }
    ).model_dump()
