"""Drive "Sign in with GitHub" as a browser would, with Flask's test client as the browser
(it keeps cookies per path) and the GitHub stand-in's authorize form posted with requests."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from flask.testing import FlaskClient
from support import FRONTEND
from werkzeug.test import TestResponse

from github_sandbox import GitHubSandbox

LANDING = f"{FRONTEND}/account"
# What the front end sends to /auth/refresh and /auth/logout (fetch with credentials).
COOKIE_HEADERS = {"Origin": FRONTEND, "X-Requested-With": "fetch"}
REFRESH_COOKIE = "billing_refresh"
BROWSER_COOKIE = "billing_signin"


def new_login(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def start(client: FlaskClient, return_to: str = LANDING) -> TestResponse:
    return client.get("/auth/github/start", query_string={"returnTo": return_to})


def query_of(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def authorize(
    github: GitHubSandbox,
    authorize_url: str,
    *,
    login: str | None = None,
    typed_login: str | None = None,
    decision: str = "authorize",
    **changes: str,
) -> str:
    """Submit the stand-in's authorize form (as the person at GitHub); the callback URL the
    browser is sent to. `changes` alter the authorize request (an attacker's edits)."""
    params = {**query_of(authorize_url), **changes}
    form = {**params, "decision": decision, "login": login or "", "new_login": typed_login or ""}
    if login is None and typed_login is None:
        form["new_login"] = new_login()
    answer = requests.post(
        f"{github.url}/login/oauth/authorize", data=form, allow_redirects=False, timeout=10
    )
    assert answer.status_code == 302, answer.text[:500]
    return answer.headers["Location"]


def sign_in(
    client: FlaskClient,
    github: GitHubSandbox,
    *,
    login: str | None = None,
    typed_login: str | None = None,
    return_to: str = LANDING,
) -> TestResponse:
    """The whole round trip; the callback's answer (303 to return_to, cookie set)."""
    started = start(client, return_to)
    assert started.status_code == 303, started.get_data(as_text=True)
    callback = authorize(github, started.headers["Location"], login=login, typed_login=typed_login)
    return client.get(path_of(callback))


def refresh(
    client: FlaskClient, headers: dict[str, str] | None = None, **kwargs: Any
) -> TestResponse:
    return client.post(
        "/auth/refresh", headers=COOKIE_HEADERS if headers is None else headers, **kwargs
    )


def refresh_token_of(client: FlaskClient) -> str | None:
    cookie = client.get_cookie(REFRESH_COOKIE, path="/auth")
    return cookie.value if cookie is not None and cookie.value else None


def set_cookies(response: TestResponse) -> dict[str, str]:
    """name -> the whole Set-Cookie header, for the cookies this response sets or clears."""
    return {header.split("=", 1)[0]: header for header in response.headers.getlist("Set-Cookie")}


def bearer(reply: TestResponse) -> dict[str, str]:
    return {"Authorization": f"Bearer {reply.get_json()['accessToken']}"}
