"""GitHub's OAuth web flow: `GET /login/oauth/authorize` (the page), its form post (issues a
code and sends the browser back), and `POST /login/oauth/access_token` (code -> token).

Errors are answered the way GitHub answers them: a bad client id or redirect URI on the
authorize step is an HTML page (the browser is never sent to an unregistered URL); a user who
cancels goes back with `error=access_denied`; the token endpoint answers HTTP 200 with an
`error` member for bad credentials, codes and verifiers, as GitHub does. PKCE: only S256; a
token request must send the verifier of a code issued with a challenge, and may not send one
for a code issued without (RFC 9700's rule against PKCE downgrade)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from werkzeug.wrappers import Request, Response

from .pages import authorize_page, error_page
from .store import Grant, OAuthApp, Store, TestUser

DOCS = "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/"
TOKEN_ERRORS = {
    "incorrect_client_credentials": (
        "The client_id and/or client_secret passed are incorrect.",
        "#incorrect-client-credentials",
    ),
    "redirect_uri_mismatch": (
        "The redirect_uri MUST match the registered callback URL for this application.",
        "#redirect-uri-mismatch2",
    ),
    "bad_verification_code": (
        "The code passed is incorrect or expired.",
        "#bad-verification-code",
    ),
}
VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")


def redirect(location: str, status: int = 302) -> Response:
    return Response("", status=status, headers={"Location": location})


def with_query(url: str, params: Mapping[str, str]) -> str:
    parts = urlsplit(url)
    query = "&".join(filter(None, [parts.query, urlencode(params)]))
    return urlunsplit(parts._replace(query=query))


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


# -- the authorize step --------------------------------------------------------------------


def authorize(store: Store, request: Request) -> Response:
    params = {k: v for k, v in (request.form if request.method == "POST" else request.args).items()}
    app = store.apps.get(params.get("client_id", ""))
    if app is None:
        return error_page("Not Found", "No OAuth app has this client_id.", 404)
    redirect_uri = params.get("redirect_uri") or app.callback_url
    if not app.accepts_redirect(redirect_uri):
        return error_page(
            "Redirect URI mismatch",
            "The redirect_uri is not associated with this application.",
            400,
        )
    params["redirect_uri"] = redirect_uri
    refusal = _pkce_refusal(params)
    if refusal:
        return _back(params, error="invalid_request", error_description=refusal)
    if request.method == "GET":
        return authorize_page(app, _users(store), params)
    if params.get("decision") != "authorize":
        return _back(
            params,
            error="access_denied",
            error_description="The user has denied your application access.",
            error_uri="https://docs.github.com/apps/managing-oauth-apps/troubleshooting-authorization-request-errors/#access-denied",
        )
    try:
        user = _chosen_user(store, params)
    except ValueError as exc:
        return authorize_page(app, _users(store), params, error=str(exc), status=400)
    code = store.issue_code(
        app,
        redirect_uri,
        user,
        scope=params.get("scope", ""),
        code_challenge=params.get("code_challenge") or None,
    )
    return _back(params, code=code)


def _pkce_refusal(params: Mapping[str, str]) -> str | None:
    challenge, method = params.get("code_challenge"), params.get("code_challenge_method")
    if not challenge and not method:
        return None
    if method != "S256":
        return "Only the S256 code_challenge_method is supported."
    if not challenge or not re.fullmatch(r"[A-Za-z0-9_-]{43}", challenge):
        return "The code_challenge must be a base64url SHA-256 digest (43 characters)."
    return None


def _back(params: Mapping[str, str], **answer: str) -> Response:
    """To the app's redirect URI with the answer and the state, unchanged."""
    if params.get("state"):
        answer["state"] = params["state"]
    return redirect(with_query(params["redirect_uri"], answer))


def _users(store: Store) -> list[TestUser]:
    with store.lock:
        return sorted(store.users.values(), key=lambda user: user.login.lower())


def _chosen_user(store: Store, params: Mapping[str, str]) -> TestUser:
    typed = params.get("new_login", "").strip()
    if typed:
        return store.user_by_login(typed) or store.add_user(typed)
    user = store.user_by_login(params.get("login", ""))
    if user is None:
        raise ValueError("Pick a test user or type a new login.")
    return user


# -- the token endpoint --------------------------------------------------------------------


def access_token(store: Store, request: Request) -> Response:
    params = _token_params(request)
    wants_json = "application/json" in request.headers.get("Accept", "")
    app = store.apps.get(params.get("client_id", ""))
    if app is None or not hmac.compare_digest(
        params.get("client_secret", "").encode(), app.client_secret.encode()
    ):
        return _token_error("incorrect_client_credentials", wants_json)
    redirect_uri = params.get("redirect_uri")
    if redirect_uri and not app.accepts_redirect(redirect_uri):
        return _token_error("redirect_uri_mismatch", wants_json)
    with store.lock:
        grant = store.grants.get(params.get("code", ""))
        problem = _grant_problem(grant, app, params)
        if grant is not None and grant.used:
            # A code used twice: the token it gave is revoked too (RFC 6749 section 4.1.2).
            store.tokens = {k: t for k, t in store.tokens.items() if t.grant_code != grant.code}
        if problem or grant is None:
            return _token_error("bad_verification_code", wants_json, problem)
        grant.used = True
        token = store.issue_token(grant)
    answer = {"access_token": token.token, "token_type": "bearer", "scope": token.scope}
    if wants_json:
        return Response(json.dumps(answer), content_type="application/json; charset=utf-8")
    return Response(urlencode(answer), content_type="application/x-www-form-urlencoded")


def _token_params(request: Request) -> dict[str, str]:
    if request.is_json:
        body = request.get_json(silent=True)
        data: dict[str, Any] = body if isinstance(body, dict) else {}
    else:
        data = dict(request.form.items())
    merged = {**dict(request.args.items()), **data}
    return {key: str(value) for key, value in merged.items()}


def _grant_problem(grant: Grant | None, app: OAuthApp, params: Mapping[str, str]) -> str | None:
    """Why this code can't be exchanged (None: it can). The public error stays GitHub's
    `bad_verification_code`; the description says which check failed."""
    if grant is None or grant.client_id != app.client_id:
        return "The code passed is incorrect or expired."
    if grant.used or grant.expires_at < time.time():
        return "The code passed is incorrect or expired."
    redirect_uri = params.get("redirect_uri")
    if redirect_uri and redirect_uri != grant.redirect_uri:
        return "The redirect_uri does not match the one the code was issued for."
    verifier = params.get("code_verifier", "")
    if grant.code_challenge is None:
        return (
            "A code_verifier was sent for a code issued without a code_challenge."
            if verifier
            else None
        )
    if not verifier:
        return "The code was issued with a code_challenge: send its code_verifier."
    if not VERIFIER.match(verifier) or not hmac.compare_digest(
        s256(verifier), grant.code_challenge
    ):
        return "The code_verifier does not match the code_challenge."
    return None


def _token_error(error: str, wants_json: bool, description: str | None = None) -> Response:
    default, anchor = TOKEN_ERRORS[error]
    body = {"error": error, "error_description": description or default, "error_uri": DOCS + anchor}
    if wants_json:
        return Response(json.dumps(body), content_type="application/json; charset=utf-8")
    return Response(urlencode(body), content_type="application/x-www-form-urlencoded")
