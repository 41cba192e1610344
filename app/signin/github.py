"""GitHub's side of the sign-in: the authorize URL, the code exchange and the user's profile.

GITHUB_BASE_URL serves the authorize page and token endpoint (https://github.com), and
GITHUB_API_URL the REST API (https://api.github.com); both point at github_sandbox in
development and tests. GitHub's access token is used for two reads and dropped: it is never
stored, logged or handed to the browser."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import requests

from app.safe_text import for_log, has_unsafe_chars

log = logging.getLogger(__name__)

# The profile and the primary email; nothing else of the user's account.
SCOPE = "user:email"
API_HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
LOGIN = re.compile(r"^[A-Za-z0-9-]{1,39}$")


class GitHubRefused(Exception):
    """GitHub said no: a bad, used or expired code, a wrong verifier, wrong app credentials,
    or an answer we can't use. `reason` is GitHub's error code, for the log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class GitHubUnavailable(Exception):
    """GitHub could not be reached, or answered with a server error."""


@dataclass(frozen=True)
class GitHubProfile:
    id: int
    login: str
    name: str | None
    email: str | None

    @property
    def user_id(self) -> str:
        # The numeric id: a login can be renamed, and then taken by someone else.
        return f"github:{self.id}"


def authorize_url(config: Mapping[str, Any], *, state: str, challenge: str, callback: str) -> str:
    query = urlencode(
        {
            "client_id": config["GITHUB_CLIENT_ID"],
            "redirect_uri": callback,
            "scope": SCOPE,
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "allow_signup": "true",
        }
    )
    return f"{_base(config, 'GITHUB_BASE_URL')}/login/oauth/authorize?{query}"


def sign_in_user(
    config: Mapping[str, Any], *, code: str, verifier: str, callback: str
) -> GitHubProfile:
    """Exchange the code (with the PKCE verifier) and read who signed in."""
    token = _exchange_code(config, code=code, verifier=verifier, callback=callback)
    return _read_profile(config, token)


def _base(config: Mapping[str, Any], name: str) -> str:
    return str(config[name]).rstrip("/")


def _call(method: str, url: str, config: Mapping[str, Any], **kwargs: Any) -> requests.Response:
    try:
        reply = requests.request(
            method, url, timeout=float(config["GITHUB_TIMEOUT_SECONDS"]), **kwargs
        )
    except requests.RequestException as exc:
        log.warning("GitHub unreachable: %s", type(exc).__name__)
        raise GitHubUnavailable(type(exc).__name__) from exc
    if reply.status_code >= 500:
        log.warning("GitHub answered %s", reply.status_code)
        raise GitHubUnavailable(str(reply.status_code))
    return reply


def _exchange_code(config: Mapping[str, Any], *, code: str, verifier: str, callback: str) -> str:
    reply = _call(
        "POST",
        f"{_base(config, 'GITHUB_BASE_URL')}/login/oauth/access_token",
        config,
        data={
            "client_id": config["GITHUB_CLIENT_ID"],
            "client_secret": config["GITHUB_CLIENT_SECRET"],
            "code": code,
            "redirect_uri": callback,
            "code_verifier": verifier,
        },
        headers={"Accept": "application/json"},
    )
    body = _json(reply)
    token = body.get("access_token")
    if reply.status_code != 200 or not isinstance(token, str) or not token:
        # GitHub answers 200 with an `error` member for bad codes, verifiers and credentials.
        reason = str(body.get("error") or f"http_{reply.status_code}")
        log.warning("GitHub refused the sign-in code: %s", for_log(reason, 100))
        raise GitHubRefused(reason)
    return token


def _read_profile(config: Mapping[str, Any], token: str) -> GitHubProfile:
    api = _base(config, "GITHUB_API_URL")
    headers = {**API_HEADERS, "Authorization": f"Bearer {token}"}
    reply = _call("GET", f"{api}/user", config, headers=headers)
    body = _json(reply)
    user_id, login = body.get("id"), body.get("login")
    if reply.status_code != 200 or not isinstance(user_id, int) or not isinstance(login, str):
        raise GitHubRefused(f"user_http_{reply.status_code}")
    if isinstance(user_id, bool) or user_id <= 0:
        raise GitHubRefused("user_id_invalid")
    email = _text(body.get("email")) or _primary_email(config, api, headers)
    login_shown = login if LOGIN.match(login) else None
    return GitHubProfile(user_id, login_shown or str(user_id), _text(body.get("name")), email)


def _primary_email(config: Mapping[str, Any], api: str, headers: Mapping[str, str]) -> str | None:
    """The verified primary email, when the profile shows none (it is private)."""
    reply = _call("GET", f"{api}/user/emails", config, headers=dict(headers))
    try:
        emails = reply.json() if reply.status_code == 200 else []
    except ValueError:
        emails = []
    for entry in emails if isinstance(emails, list) else []:
        if isinstance(entry, dict) and entry.get("primary") and entry.get("verified"):
            return _text(entry.get("email"))
    return None


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip() and len(value) <= 255:
        return None if has_unsafe_chars(value) else value.strip()
    return None


def _json(reply: requests.Response) -> dict[str, Any]:
    try:
        body = reply.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
