"""The GitHub stand-in (github_sandbox) answers as GitHub does: the authorize page and its
refusals, the token endpoint's 200-with-`error` answers for bad credentials, codes and PKCE
verifiers, `/user` and `/user/emails` with their 401/404, and its command line."""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from github_sandbox import DEV_CLIENT_ID, DEV_CLIENT_SECRET, GitHubSandbox

ROOT = Path(__file__).resolve().parent.parent
CALLBACK = "http://127.0.0.1:4321/auth/github/callback"
VERIFIER = "v" * 43 + "-verifier"


def challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@pytest.fixture
def gh() -> Iterator[GitHubSandbox]:
    sandbox = GitHubSandbox()
    sandbox.start()
    yield sandbox
    sandbox.stop()


def grant(gh: GitHubSandbox, *, login: str = "octocat", **params: str) -> dict[str, str]:
    """Authorize as `login`; the query GitHub sends the browser back with."""
    form = {
        "client_id": DEV_CLIENT_ID,
        "redirect_uri": CALLBACK,
        "state": "st",
        "scope": "user:email",
        "code_challenge": challenge(VERIFIER),
        "code_challenge_method": "S256",
        "login": login,
        "decision": "authorize",
        **params,
    }
    answer = requests.post(f"{gh.url}/login/oauth/authorize", data=form, allow_redirects=False)
    assert answer.status_code == 302, answer.text
    location = answer.headers["Location"]
    assert location.startswith(CALLBACK + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def exchange(gh: GitHubSandbox, code: str, *, json_reply: bool = True, **params: str) -> Any:
    data = {
        "client_id": DEV_CLIENT_ID,
        "client_secret": DEV_CLIENT_SECRET,
        "code": code,
        "redirect_uri": CALLBACK,
        "code_verifier": VERIFIER,
        **params,
    }
    headers = {"Accept": "application/json"} if json_reply else {}
    answer = requests.post(f"{gh.url}/login/oauth/access_token", data=data, headers=headers)
    assert answer.status_code == 200  # GitHub's errors here are 200s too
    return answer.json() if json_reply else answer.text


def test_the_whole_web_flow(gh: GitHubSandbox) -> None:
    page = requests.get(
        f"{gh.url}/login/oauth/authorize",
        params={"client_id": DEV_CLIENT_ID, "redirect_uri": CALLBACK, "state": "st"},
    )
    assert page.status_code == 200 and 'id="authorize"' in page.text and "octocat" in page.text
    back = grant(gh)
    assert back["state"] == "st" and re.fullmatch(r"[0-9a-f]{20}", back["code"])
    token = exchange(gh, back["code"])
    assert token["token_type"] == "bearer" and token["scope"] == "user:email"
    assert token["access_token"].startswith("gho_")
    auth = {"Authorization": f"Bearer {token['access_token']}"}
    user = requests.get(f"{gh.url}/user", headers=auth).json()
    assert (user["id"], user["login"], user["email"]) == (583231, "octocat", "octocat@github.com")
    emails = requests.get(f"{gh.url}/user/emails", headers=auth).json()
    assert emails[0]["primary"] and emails[0]["verified"]


def test_a_form_encoded_answer_without_an_accept_header(gh: GitHubSandbox) -> None:
    text = exchange(gh, grant(gh)["code"], json_reply=False)
    assert text.startswith("access_token=gho_") and "token_type=bearer" in text


@pytest.mark.parametrize(
    ("change", "error", "description"),
    [
        ({"client_secret": "wrong"}, "incorrect_client_credentials", "are incorrect"),
        ({"client_id": "Ov23liUnknown"}, "incorrect_client_credentials", "are incorrect"),
        ({"code": "0" * 20}, "bad_verification_code", "incorrect or expired"),
        ({"redirect_uri": "https://evil.example/cb"}, "redirect_uri_mismatch", "MUST match"),
        ({"code_verifier": ""}, "bad_verification_code", "send its code_verifier"),
        ({"code_verifier": "w" * 50}, "bad_verification_code", "does not match"),
        ({"code_verifier": "short"}, "bad_verification_code", "does not match"),
    ],
)
def test_token_errors_are_githubs(
    gh: GitHubSandbox, change: dict[str, str], error: str, description: str
) -> None:
    issued = grant(gh)["code"]
    answer = exchange(gh, change.pop("code", issued), **change)
    assert answer["error"] == error and description in answer["error_description"]
    assert answer["error_uri"].startswith("https://docs.github.com/")
    assert "access_token" not in answer


def test_a_code_works_once_and_its_reuse_revokes_the_token(gh: GitHubSandbox) -> None:
    code = grant(gh)["code"]
    token = exchange(gh, code)["access_token"]
    assert exchange(gh, code)["error"] == "bad_verification_code"
    reply = requests.get(f"{gh.url}/user", headers={"Authorization": f"token {token}"})
    assert reply.status_code == 401 and reply.json()["message"] == "Bad credentials"


def test_pkce_only_s256_and_no_downgrade(gh: GitHubSandbox) -> None:
    refused = requests.get(
        f"{gh.url}/login/oauth/authorize",
        params={
            "client_id": DEV_CLIENT_ID,
            "redirect_uri": CALLBACK,
            "state": "st",
            "code_challenge": "x" * 43,
            "code_challenge_method": "plain",
        },
        allow_redirects=False,
    )
    back = parse_qs(urlsplit(refused.headers["Location"]).query)
    assert back["error"] == ["invalid_request"] and back["state"] == ["st"]
    # A code issued without a challenge can't be exchanged with a verifier (RFC 9700).
    bare = grant(gh, code_challenge="", code_challenge_method="")["code"]
    assert "code_challenge" in exchange(gh, bare)["error_description"]
    assert "access_token" in exchange(
        gh, grant(gh, code_challenge="", code_challenge_method="")["code"], code_verifier=""
    )


def test_authorize_refuses_unknown_apps_and_unregistered_redirects(gh: GitHubSandbox) -> None:
    unknown = requests.get(f"{gh.url}/login/oauth/authorize", params={"client_id": "nope"})
    assert unknown.status_code == 404
    for redirect_uri in (
        "https://evil.example/auth/github/callback",
        "http://127.0.0.1:4321/elsewhere",
        "http://user@127.0.0.1:4321/auth/github/callback",
    ):
        page = requests.get(
            f"{gh.url}/login/oauth/authorize",
            params={"client_id": DEV_CLIENT_ID, "redirect_uri": redirect_uri},
            allow_redirects=False,
        )
        assert page.status_code == 400 and "not associated" in page.text
        assert "Location" not in page.headers


def test_cancel_sends_access_denied(gh: GitHubSandbox) -> None:
    back = grant(gh, decision="deny")
    assert back["error"] == "access_denied" and back["state"] == "st" and "code" not in back


def test_a_typed_login_creates_a_user_with_a_new_id(gh: GitHubSandbox) -> None:
    code = grant(gh, login="", new_login="new-person")["code"]
    token = exchange(gh, code)["access_token"]
    user = requests.get(f"{gh.url}/user", headers={"Authorization": f"Bearer {token}"}).json()
    assert user["login"] == "new-person" and user["id"] > 10_000_000 and user["email"] is None
    bad = requests.post(
        f"{gh.url}/login/oauth/authorize",
        data={
            "client_id": DEV_CLIENT_ID,
            "redirect_uri": CALLBACK,
            "new_login": "-bad login-",
            "decision": "authorize",
        },
    )
    assert bad.status_code == 400 and "not a GitHub login" in bad.text


def test_user_api_errors(gh: GitHubSandbox) -> None:
    assert requests.get(f"{gh.url}/user").json()["message"] == "Requires authentication"
    bad = requests.get(f"{gh.url}/user", headers={"Authorization": "Bearer gho_nope"})
    assert bad.status_code == 401 and bad.json()["message"] == "Bad credentials"
    token = exchange(gh, grant(gh, scope="")["code"])["access_token"]
    emails = requests.get(f"{gh.url}/user/emails", headers={"Authorization": f"Bearer {token}"})
    assert emails.status_code == 404  # no user:email scope


def test_control_endpoints_rename_users_and_set_faults(gh: GitHubSandbox) -> None:
    made = requests.post(f"{gh.url}/_sandbox/users", json={"login": "renamer", "id": 77}).json()
    assert made["id"] == 77
    renamed = requests.post(f"{gh.url}/_sandbox/users/77/rename", json={"login": "renamed"})
    assert renamed.json()["login"] == "renamed"
    moved = requests.post(f"{gh.url}/_sandbox/users/77/email", json={"email": "new@example.org"})
    assert moved.json()["email"] == "new@example.org"
    assert gh.store.users[77].emails()[0]["email"] == "new@example.org"  # GET /user/emails
    refused = requests.post(f"{gh.url}/_sandbox/users/77/email", json={"email": "nope"})
    assert refused.status_code == 400
    requests.post(f"{gh.url}/_sandbox/faults", json={"token_status": 503})
    failing = requests.post(f"{gh.url}/login/oauth/access_token", data={})
    assert failing.status_code == 503
    requests.post(f"{gh.url}/_sandbox/reset")
    assert gh.store.user_by_login("renamed") is None and gh.faults["token_status"] is None


def test_the_command_line_prints_its_address_and_serves() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "github_sandbox", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.match(r"GitHub sandbox listening on (http://127\.0\.0\.1:\d+)$", line.strip())
        assert match, line
        assert requests.get(match.group(1), timeout=5).json()["object"] == "github_sandbox"
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
