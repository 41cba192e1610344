"""Sign in with GitHub, as a front end uses it: start -> GitHub (the stand-in) -> callback ->
landing with the refresh cookie -> POST /auth/refresh for an access token -> the API as that
user; renewals rotate the cookie; sign-out ends the session. The attacks are in
tests/test_signin_attacks.py."""

from __future__ import annotations

import time

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from signin_support import (
    COOKIE_HEADERS,
    LANDING,
    REFRESH_COOKIE,
    authorize,
    bearer,
    new_login,
    path_of,
    query_of,
    refresh,
    refresh_token_of,
    set_cookies,
    sign_in,
    start,
)
from support import FRONTEND, Billing

from app.config import DEV_JWT_SECRET
from app.signin.settings import DEV_SESSION_SECRET
from github_sandbox import GitHubSandbox


def test_sign_in_lands_without_a_token_and_the_cookie_renews_into_an_access_token(
    app: Flask, client: FlaskClient, github: GitHubSandbox
) -> None:
    landing = sign_in(client, github, login="octocat")
    assert landing.status_code == 303
    assert landing.headers["Location"] == LANDING  # exactly where the front end asked
    cookie = set_cookies(landing)[REFRESH_COOKIE]
    assert "HttpOnly" in cookie and "Path=/auth" in cookie and "SameSite=Lax" in cookie
    reply = refresh(client)
    assert reply.status_code == 200, reply.get_json()
    body = reply.get_json()
    assert body["tokenType"] == "Bearer" and body["expiresIn"] == 900
    assert body["user"] == {
        "id": "github:583231",
        "login": "octocat",
        "name": "The Octocat",
        "email": "octocat@github.com",
    }
    me = client.get("/api/me", headers=bearer(reply))
    assert me.status_code == 200
    assert me.get_json()["user"]["id"] == "github:583231"
    assert me.get_json()["user"]["email"] == "octocat@github.com"


def test_the_access_token_is_the_apis_own_short_lived_jwt(
    app: Flask, client: FlaskClient, github: GitHubSandbox
) -> None:
    sign_in(client, github, login="octocat")
    token = refresh(client).get_json()["accessToken"]
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "HS256" and header["kid"] == "billing-session-v1"
    claims = jwt.decode(token, DEV_SESSION_SECRET, algorithms=["HS256"], audience="billing-api")
    assert claims["sub"] == "github:583231" and claims["iss"] == "billing-api/session"
    assert claims["exp"] - claims["iat"] == 900
    # Not signed with the HS256 mode's secret: a backend holding it can't pass for the API.
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, DEV_JWT_SECRET, algorithms=["HS256"], audience="billing-api")


def test_a_private_email_is_read_from_the_users_verified_primary_email(
    client: FlaskClient, github: GitHubSandbox
) -> None:
    sign_in(client, github, login="monalisa")  # no public email on the profile
    user = refresh(client).get_json()["user"]
    assert user == {
        "id": "github:9919",
        "login": "monalisa",
        "name": "Mona Lisa Octocat",
        "email": "mona@example.com",
    }


def test_the_user_id_is_githubs_numeric_id_and_survives_a_renamed_login(
    client: FlaskClient, app: Flask, github: GitHubSandbox
) -> None:
    login = new_login("rename")
    user = github.store.add_user(login, name="Before")
    sign_in(client, github, login=login)
    first = refresh(client).get_json()
    assert first["user"]["id"] == f"github:{user.id}"
    assert client.get("/api/me", headers=bearer(refresh(client))).status_code == 200

    renamed = new_login("renamed")
    github.store.rename_user(user.id, renamed)
    again = app.test_client()
    sign_in(again, github, login=renamed)
    second = refresh(again).get_json()
    assert second["user"]["id"] == f"github:{user.id}"  # the same account
    assert second["user"]["login"] == renamed
    # And the old login, now someone else's, is a different account.
    github.store.add_user(login)
    third = app.test_client()
    sign_in(third, github, login=login)
    assert refresh(third).get_json()["user"]["id"] != f"github:{user.id}"


def test_each_renewal_rotates_the_cookie(client: FlaskClient, github: GitHubSandbox) -> None:
    sign_in(client, github)
    seen = [refresh_token_of(client)]
    for _ in range(3):
        reply = refresh(client)
        assert reply.status_code == 200
        assert REFRESH_COOKIE in set_cookies(reply)
        seen.append(refresh_token_of(client))
    assert len(set(seen)) == 4 and None not in seen


def test_cancelling_at_github_lands_with_signin_denied_and_no_cookie(
    client: FlaskClient, github: GitHubSandbox
) -> None:
    started = start(client, LANDING + "?tab=billing#plans")
    callback = authorize(github, started.headers["Location"], decision="deny")
    assert query_of(callback)["error"] == "access_denied"
    landing = client.get(path_of(callback))
    assert landing.status_code == 303
    assert landing.headers["Location"] == (
        f"{FRONTEND}/account?tab=billing&signinError=signin_denied#plans"
    )
    assert REFRESH_COOKIE not in set_cookies(landing)
    assert refresh(client).get_json()["error"]["code"] == "missing_refresh_token"


def test_github_down_lands_with_identity_provider_unavailable(
    client: FlaskClient, github: GitHubSandbox
) -> None:
    started = start(client)
    callback = authorize(github, started.headers["Location"])
    github.faults["token_status"] = 502
    try:
        landing = client.get(path_of(callback))
    finally:
        github.faults["token_status"] = None
    assert landing.headers["Location"] == f"{LANDING}?signinError=identity_provider_unavailable"
    assert REFRESH_COOKIE not in set_cookies(landing)


def test_github_unreachable_lands_with_identity_provider_unavailable(
    app: Flask, client: FlaskClient, github: GitHubSandbox
) -> None:
    started = start(client)
    callback = authorize(github, started.headers["Location"])
    app.config.update(GITHUB_BASE_URL="http://127.0.0.1:9", GITHUB_TIMEOUT_SECONDS=2)
    try:
        landing = client.get(path_of(callback))
    finally:
        app.config.update(GITHUB_BASE_URL=github.url, GITHUB_TIMEOUT_SECONDS=5)
    assert landing.headers["Location"] == f"{LANDING}?signinError=identity_provider_unavailable"


def test_sign_out_ends_the_session_and_clears_the_cookie(
    client: FlaskClient, github: GitHubSandbox
) -> None:
    sign_in(client, github)
    assert refresh(client).status_code == 200
    token = refresh_token_of(client)
    out = client.post("/auth/logout", headers=COOKIE_HEADERS)
    assert out.status_code == 200 and out.get_json() == {"signedOut": True}
    assert "Max-Age=0" in set_cookies(out)[REFRESH_COOKIE]
    assert refresh_token_of(client) is None
    client.set_cookie(REFRESH_COOKIE, str(token), path="/auth")
    again = refresh(client)
    assert again.status_code == 401
    assert again.get_json()["error"]["code"] == "refresh_token_revoked"
    # Signing out twice (or with no cookie) is fine.
    assert client.post("/auth/logout", headers=COOKIE_HEADERS).status_code == 200


def test_sign_in_needs_a_configured_github_app(app: Flask, client: FlaskClient) -> None:
    app.config.update(GITHUB_CLIENT_ID="")
    try:
        reply = start(client)
    finally:
        app.config.update(GITHUB_CLIENT_ID="Ov23liSandboxDevApp01")
    assert reply.status_code == 404
    assert reply.get_json()["error"]["code"] == "signin_not_configured"


def test_the_authorize_redirect_asks_github_for_the_least(
    app: Flask, client: FlaskClient, github: GitHubSandbox
) -> None:
    started = start(client)
    location = started.headers["Location"]
    assert location.startswith(f"{github.url}/login/oauth/authorize?")
    params = query_of(location)
    assert params["scope"] == "user:email"
    assert params["redirect_uri"] == app.config["PUBLIC_URL"] + "/auth/github/callback"
    assert params["client_id"] == app.config["GITHUB_CLIENT_ID"]
    assert len(params["state"]) >= 43


def test_sessions_expire_after_the_configured_days(
    app: Flask, client: FlaskClient, github: GitHubSandbox, billing: Billing
) -> None:
    sign_in(client, github)
    body = refresh(client).get_json()
    days = (body["sessionExpiresAt"] / 1000 - time.time()) / 86400
    assert 29.9 < days <= 30


def test_an_operator_can_end_every_sign_in_of_a_user(
    app: Flask, client: FlaskClient, github: GitHubSandbox
) -> None:
    sign_in(client, github, login="octocat")
    laptop = app.test_client()
    sign_in(laptop, github, login="octocat")
    other = app.test_client()
    sign_in(other, github, login="hubot")
    result = app.test_cli_runner().invoke(args=["auth", "sign-out", "github:583231"])
    assert result.exit_code == 0 and "2 session(s) of github:583231 ended" in result.output
    for browser in (client, laptop):
        reply = refresh(browser)
        assert reply.status_code == 401
        assert reply.get_json()["error"]["code"] == "refresh_token_revoked"
    assert refresh(other).status_code == 200  # someone else's sign-in is untouched
