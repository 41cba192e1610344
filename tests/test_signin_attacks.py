"""Attacks on "Sign in with GitHub" and its refresh cookie, each checked by what the attacker
(or the victim) would see: the status and error code, where the browser goes, which cookies
are set, and whether a session exists afterwards.

open redirect through returnTo; state mismatch (login CSRF), replay, expiry; code reuse; PKCE
code injection and downgrade; tokens in logs or in the landing URL; CSRF on the refresh and
sign-out routes; revoked, rotated-and-reused and expired refresh tokens; forged and expired
access tokens; production's published dev secret."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import jwt
import pytest
import requests
from app_instance import serve_instance
from flask import Flask
from flask.testing import FlaskClient
from signin_support import (
    BROWSER_COOKIE,
    COOKIE_HEADERS,
    LANDING,
    REFRESH_COOKIE,
    authorize,
    bearer,
    path_of,
    query_of,
    refresh,
    refresh_token_of,
    set_cookies,
    sign_in,
    start,
)
from sqlalchemy import func, select, update
from support import FRONTEND, Billing, github_settings

from app import create_app
from app.config import DEV_JWT_SECRET
from app.extensions import db
from app.models import AuditEntry, AuthSession, RefreshToken, SignInAttempt, utcnow
from app.signin.settings import DEV_SESSION_SECRET
from app.signin.tokens import SESSION_AUDIENCE, SESSION_ISSUER, SESSION_KEY_ID
from github_sandbox import GitHubSandbox


def count(app: Flask, model: Any) -> int:
    with app.app_context():
        total = db.session.execute(select(func.count()).select_from(model)).scalar_one()
        db.session.rollback()
        return int(total)


def error_code(reply: Any) -> str:
    return str(reply.get_json()["error"]["code"])


# -- open redirect through returnTo --------------------------------------------------------

FOREIGN_RETURN_TO = [
    "https://evil.example/account",  # another site
    "http://localhost:5174/account",  # another port
    "https://localhost:5173/account",  # another scheme
    "//evil.example/account",  # scheme-relative
    "/account",  # relative: no origin at all
    "javascript:alert(document.cookie)",
    "data:text/html,<script>alert(1)</script>",
    "ftp://localhost:5173/",
    "http://localhost:5173@evil.example/",  # userinfo: the host is evil.example
    "http://evil.example@localhost:5173/",  # userinfo on our host
    "http://localhost:5173.evil.example/",  # our origin as a subdomain of theirs
    "http://localhost:5173\\@evil.example/",  # browsers read \ as /, Python does not
    "http:\\\\evil.example\\account",
    "http://localhost:5173/\\evil.example",
    "http://evil.example#http://localhost:5173/",
    " http://localhost:5173/account",  # leading space
    "http://localhost:5173\t.evil.example/",  # a tab browsers strip
    "http://localhost:5173/\r\nSet-Cookie: x=1",  # header injection
]


@pytest.mark.parametrize("return_to", FOREIGN_RETURN_TO)
def test_open_redirect_through_return_to_is_refused(
    app: Flask, client: FlaskClient, return_to: str
) -> None:
    before = count(app, SignInAttempt)
    reply = start(client, return_to)
    assert reply.status_code == 400, reply.get_data(as_text=True)
    assert reply.get_json()["error"] == {
        "code": "redirect_not_allowed",
        "message": "returnTo must be on the application's own site.",
        "field": "returnTo",
    }
    assert "Location" not in reply.headers
    assert not reply.headers.getlist("Set-Cookie")
    assert count(app, SignInAttempt) == before  # nothing remembered for it


@pytest.mark.parametrize("return_to", ["", None])
def test_a_missing_return_to_is_a_validation_error(client: FlaskClient, return_to: Any) -> None:
    query = {} if return_to is None else {"returnTo": return_to}
    reply = client.get("/auth/github/start", query_string=query)
    assert reply.status_code == 422 and error_code(reply) == "validation_error"
    assert not reply.headers.getlist("Set-Cookie")


def test_an_allowed_return_to_is_kept_exactly(client: FlaskClient, github: GitHubSandbox) -> None:
    target = "HTTP://LOCALHOST:5173/billing?tab=plans#pro"  # same origin, other spelling
    landing = sign_in(client, github, return_to=target)
    assert landing.status_code == 303
    assert landing.headers["Location"] == "http://localhost:5173/billing?tab=plans#pro"


# -- state: login CSRF, replay, expiry -------------------------------------------------------


def test_a_callback_from_another_browser_is_refused_login_csrf(
    app: Flask, client: FlaskClient, github: GitHubSandbox
) -> None:
    """The attacker signs in at GitHub and sends the victim the callback link: the victim's
    browser must not end up signed in as the attacker (who would then pay for whom?)."""
    attacker = app.test_client()
    started = start(attacker)
    callback = authorize(github, started.headers["Location"], login="hubot")
    victim = client
    own = start(victim)  # the victim may even have a sign-in of their own under way
    reply = victim.get(path_of(callback))
    assert reply.status_code == 400 and error_code(reply) == "invalid_state"
    assert not reply.headers.getlist("Set-Cookie")
    assert refresh(victim).status_code == 401
    # The attacker's state is spent too: the link can't be used by anyone now.
    again = attacker.get(path_of(callback))
    assert again.status_code == 400 and error_code(again) == "invalid_state"
    assert count(app, AuthSession) == 0
    # And the victim's own sign-in was not spoiled by the forged callback.
    landed = victim.get(path_of(authorize(github, own.headers["Location"], login="octocat")))
    assert landed.status_code == 303 and REFRESH_COOKIE in set_cookies(landed)
    assert refresh(victim).get_json()["user"]["id"] == "github:583231"


@pytest.mark.parametrize(
    "query", ["code=abc", "code=abc&state=", "code=abc&state=made-up-state", "state=x&code="]
)
def test_a_missing_or_unknown_state_is_refused(app: Flask, client: FlaskClient, query: str) -> None:
    start(client)
    reply = client.get(f"/auth/github/callback?{query}")
    assert reply.status_code == 400 and error_code(reply) == "invalid_state"
    assert "Location" not in reply.headers and REFRESH_COOKIE not in set_cookies(reply)


def test_a_replayed_callback_is_refused(
    app: Flask, client: FlaskClient, github: GitHubSandbox
) -> None:
    started = start(client)
    browser_key = client.get_cookie(BROWSER_COOKIE, path="/auth/github").value
    callback = authorize(github, started.headers["Location"])
    first = client.get(path_of(callback))
    assert first.status_code == 303 and REFRESH_COOKIE in set_cookies(first)
    # Replayed exactly, binding cookie included (a stolen request).
    client.set_cookie(BROWSER_COOKIE, browser_key, path="/auth/github")
    replay = client.get(path_of(callback))
    assert replay.status_code == 400 and error_code(replay) == "invalid_state"
    assert REFRESH_COOKIE not in set_cookies(replay)
    assert count(app, AuthSession) == 1


def test_an_expired_sign_in_is_refused(
    app: Flask, client: FlaskClient, github: GitHubSandbox
) -> None:
    started = start(client)
    callback = authorize(github, started.headers["Location"])
    with app.app_context():
        db.session.execute(update(SignInAttempt).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    reply = client.get(path_of(callback))
    assert reply.status_code == 400 and error_code(reply) == "invalid_state"
    assert REFRESH_COOKIE not in set_cookies(reply)


def test_two_sign_ins_started_in_one_browser_only_the_latest_completes(
    app: Flask, client: FlaskClient, github: GitHubSandbox
) -> None:
    first = start(client)
    second = start(client)  # a second tab: the binding cookie is now the second's
    stale = client.get(path_of(authorize(github, first.headers["Location"])))
    assert stale.status_code == 400 and error_code(stale) == "invalid_state"
    fresh = client.get(path_of(authorize(github, second.headers["Location"])))
    assert fresh.status_code == 303 and REFRESH_COOKIE in set_cookies(fresh)


# -- GitHub's code: reuse, PKCE -------------------------------------------------------------


def test_a_used_code_is_refused(app: Flask, client: FlaskClient, github: GitHubSandbox) -> None:
    started = start(client)
    callback = authorize(github, started.headers["Location"])
    assert REFRESH_COOKIE in set_cookies(client.get(path_of(callback)))
    used_code = query_of(callback)["code"]
    # A fresh sign-in of this browser, completed with the old code.
    fresh_state = query_of(start(client).headers["Location"])["state"]
    reply = client.get(f"/auth/github/callback?code={used_code}&state={fresh_state}")
    assert reply.status_code == 303
    assert reply.headers["Location"] == f"{LANDING}?signinError=signin_failed"
    assert REFRESH_COOKIE not in set_cookies(reply)
    assert count(app, AuthSession) == 1


def test_the_authorize_request_always_uses_pkce_s256(client: FlaskClient) -> None:
    params = query_of(start(client).headers["Location"])
    assert params["code_challenge_method"] == "S256"
    assert len(params["code_challenge"]) == 43 and "=" not in params["code_challenge"]
    assert "code_verifier" not in params  # the verifier never leaves the server


def test_a_stolen_code_injected_into_the_attackers_sign_in_fails_pkce(
    app: Flask, client: FlaskClient, github: GitHubSandbox
) -> None:
    """The victim's code (leaked from their callback URL) pasted into the attacker's own,
    valid sign-in: the attacker's verifier doesn't match the victim's challenge."""
    victim_start = start(client)
    victim_callback = authorize(github, victim_start.headers["Location"], login="octocat")
    stolen = query_of(victim_callback)["code"]
    attacker = app.test_client()
    attacker_state = query_of(start(attacker).headers["Location"])["state"]
    reply = attacker.get(f"/auth/github/callback?code={stolen}&state={attacker_state}")
    assert reply.status_code == 303
    assert reply.headers["Location"] == f"{LANDING}?signinError=signin_failed"
    assert REFRESH_COOKIE not in set_cookies(reply)
    assert refresh(attacker).status_code == 401
    assert count(app, AuthSession) == 0


def test_a_pkce_downgrade_at_github_fails_the_exchange(
    app: Flask, client: FlaskClient, github: GitHubSandbox
) -> None:
    """The challenge stripped from the authorize request on its way to GitHub: the code is
    issued without one, and the API's verifier then fails the exchange."""
    started = start(client)
    callback = authorize(
        github, started.headers["Location"], code_challenge="", code_challenge_method=""
    )
    reply = client.get(path_of(callback))
    assert reply.headers["Location"] == f"{LANDING}?signinError=signin_failed"
    assert REFRESH_COOKIE not in set_cookies(reply)
    exchange = [r for r in github.requests if r["path"] == "/login/oauth/access_token"][-1]
    assert len(exchange["params"]["code_verifier"]) >= 43


# -- tokens never in logs or URLs ----------------------------------------------------------


def test_no_token_or_secret_reaches_the_logs_or_the_landing_url(
    app: Flask, client: FlaskClient, github: GitHubSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    started = start(client)
    callback = authorize(github, started.headers["Location"], login="octocat")
    landing = client.get(path_of(callback))
    assert landing.headers["Location"] == LANDING
    first_refresh = refresh_token_of(client)
    renewed = refresh(client)
    access = renewed.get_json()["accessToken"]
    assert client.get("/api/me", headers=bearer(renewed)).status_code == 200
    refresh(client, headers={"Origin": "https://evil.example", "X-Requested-With": "x"})
    second_refresh = refresh_token_of(client)
    client.post("/auth/logout", headers=COOKIE_HEADERS)
    exchange = [r for r in github.requests if r["path"] == "/login/oauth/access_token"][-1]
    with github.store.lock:
        github_tokens = [t for t, issued in github.store.tokens.items() if issued.user_id == 583231]
    secrets = {
        "access token": access,
        "refresh token": first_refresh,
        "rotated refresh token": second_refresh,
        "GitHub's token": github_tokens[-1],
        "client secret": app.config["GITHUB_CLIENT_SECRET"],
        "PKCE verifier": exchange["params"]["code_verifier"],
        "session secret": app.config["AUTH_SESSION_SECRET"],
    }
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert caplog.records  # the requests were logged
    for name, value in secrets.items():
        assert value and value not in logged, f"{name} is in the logs"
    with app.app_context():
        audit = db.session.execute(select(AuditEntry.detail, AuditEntry.action)).all()
        db.session.rollback()
    assert {"signin.github", "signin.sign_out"} <= {row.action for row in audit}
    for name, value in secrets.items():
        assert all(value not in (row.detail or "") for row in audit), f"{name} in the audit log"
    for url in (started.headers["Location"], landing.headers["Location"]):
        for value in secrets.values():
            assert str(value) not in url


# -- CSRF on the cookie routes -------------------------------------------------------------

CSRF_ATTEMPTS = {
    "no Origin": ({"X-Requested-With": "fetch"}, "origin_not_allowed"),
    "another site": (
        {"Origin": "https://evil.example", "X-Requested-With": "fetch"},
        "origin_not_allowed",
    ),
    "opaque origin": ({"Origin": "null", "X-Requested-With": "fetch"}, "origin_not_allowed"),
    "a look-alike origin": (
        {"Origin": "http://localhost:5173.evil.example", "X-Requested-With": "fetch"},
        "origin_not_allowed",
    ),
    "no custom header": ({"Origin": FRONTEND}, "csrf_header_required"),
    "simple form post": (
        {"Origin": "https://evil.example", "Content-Type": "application/x-www-form-urlencoded"},
        "origin_not_allowed",
    ),
}


@pytest.mark.parametrize("route", ["/auth/refresh", "/auth/logout"])
@pytest.mark.parametrize("attempt", sorted(CSRF_ATTEMPTS))
def test_cross_site_requests_to_the_cookie_routes_are_refused(
    app: Flask, client: FlaskClient, github: GitHubSandbox, route: str, attempt: str
) -> None:
    sign_in(client, github)
    token = refresh_token_of(client)
    headers, code = CSRF_ATTEMPTS[attempt]
    reply = client.post(route, headers=headers, data="a=1")
    assert reply.status_code == 403 and error_code(reply) == code
    assert not reply.headers.getlist("Set-Cookie")
    assert refresh_token_of(client) == token
    # Neither rotated nor revoked: the real front end still renews with it.
    assert refresh(client).status_code == 200


def test_cors_lets_only_front_end_origins_call_the_cookie_routes_with_credentials(
    client: FlaskClient,
) -> None:
    def preflight(origin: str) -> Any:
        return client.options(
            "/auth/refresh",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "x-requested-with",
            },
        )

    allowed = preflight(FRONTEND)
    assert allowed.headers["Access-Control-Allow-Origin"] == FRONTEND
    assert allowed.headers["Access-Control-Allow-Credentials"] == "true"
    foreign = preflight("https://evil.example")
    assert "Access-Control-Allow-Origin" not in foreign.headers
    assert "Access-Control-Allow-Credentials" not in foreign.headers
    # The bearer-token API never allows credentials: the cookie is not for it.
    api = client.get("/api/plans", headers={"Origin": FRONTEND})
    assert "Access-Control-Allow-Credentials" not in api.headers


# -- refresh tokens: revoked, reused, expired, unknown ------------------------------------


def test_a_revoked_refresh_token_is_refused_and_cleared(
    client: FlaskClient, github: GitHubSandbox
) -> None:
    sign_in(client, github)
    token = str(refresh_token_of(client))
    assert client.post("/auth/logout", headers=COOKIE_HEADERS).status_code == 200
    client.set_cookie(REFRESH_COOKIE, token, path="/auth")
    reply = refresh(client)
    assert reply.status_code == 401 and error_code(reply) == "refresh_token_revoked"
    assert "Max-Age=0" in set_cookies(reply)[REFRESH_COOKIE]
    assert "accessToken" not in reply.get_data(as_text=True)


def test_reusing_a_rotated_refresh_token_revokes_the_whole_session(
    app: Flask, client: FlaskClient, github: GitHubSandbox
) -> None:
    sign_in(client, github, login="octocat")
    stolen = str(refresh_token_of(client))
    assert refresh(client).status_code == 200  # the user renews: `stolen` is rotated
    newest = str(refresh_token_of(client))
    with app.app_context():  # past the grace seconds
        db.session.execute(
            update(RefreshToken)
            .where(RefreshToken.rotated_at.is_not(None))
            .values(rotated_at=utcnow() - timedelta(minutes=5))
        )
        db.session.commit()
    thief = app.test_client()
    thief.set_cookie(REFRESH_COOKIE, stolen, path="/auth")
    reply = refresh(thief)
    assert reply.status_code == 401 and error_code(reply) == "refresh_token_reused"
    assert "Max-Age=0" in set_cookies(reply)[REFRESH_COOKIE]
    # The legitimate newest token is dead too: the session is over for both holders.
    user = refresh(client)
    assert user.status_code == 401 and error_code(user) == "refresh_token_revoked"
    with app.app_context():
        reason = db.session.execute(select(AuthSession.revoked_reason)).scalar_one()
        entry = db.session.execute(
            select(AuditEntry.user_id, AuditEntry.outcome).where(
                AuditEntry.action == "signin.token_reused"
            )
        ).one()
        db.session.rollback()
    assert reason == "reused"
    assert entry == ("github:583231", "revoked")
    assert newest != stolen


def test_two_tabs_renewing_at_once_both_get_an_access_token(
    app: Flask, client: FlaskClient, github: GitHubSandbox
) -> None:
    """Within AUTH_REFRESH_GRACE_SECONDS a rotated token gets an access token and no new
    cookie (the other tab's answer carries it); the session stays."""
    sign_in(client, github)
    old = str(refresh_token_of(client))
    assert refresh(client).status_code == 200
    other_tab = app.test_client()
    other_tab.set_cookie(REFRESH_COOKIE, old, path="/auth")
    late = refresh(other_tab)
    assert late.status_code == 200 and late.get_json()["accessToken"]
    assert REFRESH_COOKIE not in set_cookies(late)
    assert refresh(client).status_code == 200  # the session lives on


def test_an_expired_session_is_refused_and_cleared(
    app: Flask, client: FlaskClient, github: GitHubSandbox
) -> None:
    sign_in(client, github)
    with app.app_context():
        db.session.execute(update(AuthSession).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    reply = refresh(client)
    assert reply.status_code == 401 and error_code(reply) == "refresh_token_expired"
    assert "Max-Age=0" in set_cookies(reply)[REFRESH_COOKIE]


@pytest.mark.parametrize("cookie", [None, "", "made-up-token", "x" * 4000])
def test_a_missing_or_unknown_refresh_token_is_refused(
    client: FlaskClient, billing: Billing, cookie: str | None
) -> None:
    if cookie is not None:
        client.set_cookie(REFRESH_COOKIE, cookie, path="/auth")
    reply = refresh(client)
    assert reply.status_code == 401
    assert error_code(reply) == ("invalid_refresh_token" if cookie else "missing_refresh_token")


# -- access tokens: forged, expired ----------------------------------------------------------


def _session_token(secret: str, **claims: Any) -> str:
    now = int(time.time())
    base = {
        "sub": "github:583231",
        "iss": SESSION_ISSUER,
        "aud": SESSION_AUDIENCE,
        "iat": now,
        "exp": now + 600,
    }
    return jwt.encode({**base, **claims}, secret, "HS256", headers={"kid": SESSION_KEY_ID})


@pytest.mark.parametrize(
    ("name", "token", "code"),
    [
        (
            "expired",
            _session_token(
                DEV_SESSION_SECRET, iat=int(time.time()) - 3600, exp=int(time.time()) - 1800
            ),
            "token_expired",
        ),
        ("signed with the HS256 mode's secret", _session_token(DEV_JWT_SECRET), "invalid_token"),
        ("another issuer", _session_token(DEV_SESSION_SECRET, iss="someone-else"), "invalid_token"),
        ("another audience", _session_token(DEV_SESSION_SECRET, aud="other-api"), "invalid_token"),
        ("no iat", _session_token(DEV_SESSION_SECRET, iat=None), "invalid_token"),
    ],
)
def test_forged_or_expired_access_tokens_are_refused(
    client: FlaskClient, billing: Billing, name: str, token: str, code: str
) -> None:
    reply = client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert reply.status_code == 401, name
    assert error_code(reply) == code, name


PRODUCTION_GITHUB_ONLY = {
    "APP_ENV": "production",
    "DATABASE_URL": "postgresql://billing@127.0.0.1:9/billing",
    "STRIPE_SECRET_KEY": "sk_test_prod_like",
    "STRIPE_WEBHOOK_SECRET": "whsec_x",
    "STRIPE_PRICE_ID_MONTHLY": "price_x",
    "PUBLIC_URL": "https://billing.example.com",
    "FRONTEND_URLS": ["https://studio.github.app"],
    "GITHUB_CLIENT_ID": "Ov23liProdApp",
    "GITHUB_CLIENT_SECRET": "prod-secret",
    "AUTH_JWT_SECRET": "",
    "AUTH_SESSION_SECRET": "s3ss10n-" + "y" * 40,
    "METRICS_TOKEN": "metrics-token-for-tests-0123",
}


def test_production_with_github_only_accepts_no_hs256_token_but_its_own() -> None:
    """No AUTH_JWT_SECRET in production means no HS256 mode at all: not the published
    development secret, not an empty key."""
    app = create_app(PRODUCTION_GITHUB_ONLY)
    assert app.config["AUTH_JWT_SECRET"] == ""
    client = app.test_client()
    now = int(time.time())
    claims = {"sub": "github:1", "iat": now, "exp": now + 600}
    for key in (DEV_JWT_SECRET, "test-jwt-secret-0123456789-abcdefghijklmnop"):
        reply = client.get(
            "/api/me", headers={"Authorization": f"Bearer {jwt.encode(claims, key, 'HS256')}"}
        )
        assert reply.status_code == 401 and error_code(reply) == "invalid_token"


def test_production_cookies_are_secure_and_cross_site(github: GitHubSandbox) -> None:
    app = create_app(PRODUCTION_GITHUB_ONLY)
    assert app.config["AUTH_COOKIE_SAMESITE"] == "None" and app.config["AUTH_COOKIE_SECURE"]
    from app.signin.cookies import browser_cookie, refresh_cookie

    with app.app_context():
        cookie = refresh_cookie(app.config, "t", ends=utcnow() + timedelta(days=1))
        binding = browser_cookie(app.config, "k")
    assert "Secure" in cookie and "SameSite=None" in cookie and "HttpOnly" in cookie
    assert "Path=/auth" in cookie
    assert "Secure" in binding and "SameSite=Lax" in binding and "Path=/auth/github" in binding


# -- abuse limits ----------------------------------------------------------------------------


def test_sign_in_starts_and_failed_renewals_are_rate_limited_per_ip(
    app: Flask, github: GitHubSandbox, billing: Billing
) -> None:
    with serve_instance(
        app,
        RATE_LIMIT_ENABLED=True,
        RATE_LIMIT_KEY_PREFIX=f"signin-{time.time_ns()}",
        REDIS_URL="",
        RATE_LIMIT_SIGNIN="3/minute",
        RATE_LIMIT_FAILED_AUTH="2/minute",
        **github_settings(github),
    ) as instance:
        client = instance.app.test_client()
        for _ in range(3):
            assert start(client).status_code == 303
        limited = start(client)
        assert limited.status_code == 429 and error_code(limited) == "rate_limited"
        assert "Location" not in limited.headers
        other_ip = client.get(
            "/auth/github/start",
            query_string={"returnTo": LANDING},
            environ_base={"REMOTE_ADDR": "10.9.9.9"},
        )
        assert other_ip.status_code == 303
        # Pages asking whether anyone is signed in (no cookie) are not failed sign-ins ...
        for _ in range(4):
            assert error_code(refresh(client)) == "missing_refresh_token"
        # ... guessed refresh tokens are.
        for guess in ("guess-1", "guess-2"):
            client.set_cookie(REFRESH_COOKIE, guess, path="/auth")
            assert error_code(refresh(client)) == "invalid_refresh_token"
        client.set_cookie(REFRESH_COOKIE, "guess-3", path="/auth")
        blocked = refresh(client)
        assert blocked.status_code == 429 and error_code(blocked) == "rate_limited"


def test_concurrent_renewals_with_one_cookie_rotate_it_once_and_keep_the_session(
    app: Flask, client: FlaskClient, github: GitHubSandbox, billing: Billing
) -> None:
    """Several tabs renewing at the same moment (real threads against the served app): one
    rotation, every tab gets an access token, nobody is signed out."""
    sign_in(client, github)
    token = str(refresh_token_of(client))
    headers = {**COOKIE_HEADERS, "Cookie": f"{REFRESH_COOKIE}={token}"}

    def renew(_: int) -> requests.Response:
        return requests.post(f"{billing.live_url}/auth/refresh", headers=headers, timeout=30)

    with ThreadPoolExecutor(max_workers=6) as pool:
        replies = list(pool.map(renew, range(6)))
    assert [r.status_code for r in replies] == [200] * 6
    rotated = [r for r in replies if REFRESH_COOKIE in r.headers.get("Set-Cookie", "")]
    assert len(rotated) == 1
    assert count(app, RefreshToken) == 2  # the first and its one successor
    with app.app_context():
        assert db.session.execute(select(AuthSession.revoked_at)).scalar_one() is None
        db.session.rollback()
