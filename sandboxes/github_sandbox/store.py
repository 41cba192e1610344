"""What the stand-in remembers: test users, the registered OAuth apps, issued codes and tokens.

Everything lives in memory behind one lock; `reset()` goes back to the seeded users and the
one development app."""

from __future__ import annotations

import re
import secrets
import string
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

# The app `make run` and the tests use (bin/dev-stack passes these to the API). Published on
# purpose: they unlock nothing but this stand-in.
DEV_CLIENT_ID = "Ov23liSandboxDevApp01"
DEV_CLIENT_SECRET = "sandbox-dev-client-secret-0123456789abcdef"  # nosec B105
# GitHub accepts any port on a loopback callback URL; the path must be under the registered one.
DEV_CALLBACK_URL = "http://127.0.0.1/auth/github/callback"

CODE_SECONDS = 600  # GitHub: "codes expire after 10 minutes"
# GitHub logins: letters, digits and single hyphens, not at either end, at most 39 characters.
LOGIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")
_BASE62 = string.ascii_letters + string.digits


@dataclass
class TestUser:
    id: int
    login: str
    name: str | None
    # The public profile email (GET /user); the primary one is in GET /user/emails.
    public_email: str | None
    primary_email: str
    email_verified: bool = True

    def profile(self, base_url: str) -> dict[str, Any]:
        """GET /user's shape (the fields an app reads, and enough of the rest)."""
        return {
            "login": self.login,
            "id": self.id,
            "node_id": f"U_sandbox{self.id}",
            "avatar_url": f"{base_url}/avatars/{self.id}",
            "html_url": f"{base_url}/{self.login}",
            "type": "User",
            "site_admin": False,
            "name": self.name,
            "email": self.public_email,
        }

    def emails(self) -> list[dict[str, Any]]:
        return [
            {
                "email": self.primary_email,
                "primary": True,
                "verified": self.email_verified,
                "visibility": "public" if self.public_email else "private",
            }
        ]


@dataclass
class OAuthApp:
    client_id: str
    client_secret: str
    callback_url: str
    name: str = "AI Creator Studio (sandbox)"

    def accepts_redirect(self, redirect_uri: str) -> bool:
        """GitHub's rule: same scheme and host, the same port unless the host is a loopback
        address, and a path at or under the callback URL's. (Unlike GitHub, any loopback name
        stands for any other here: localhost and 127.0.0.1 are both fine in development.)"""
        want, got = urlsplit(self.callback_url), urlsplit(redirect_uri)
        loopback = want.hostname in LOOPBACK_HOSTS and got.hostname in LOOPBACK_HOSTS
        if got.scheme != want.scheme or got.username or got.password:
            return False
        if not loopback and (got.hostname != want.hostname or got.port != want.port):
            return False
        base = want.path.rstrip("/")
        return got.path == base or got.path.startswith(base + "/")


@dataclass
class Grant:
    """An authorization code and what it was issued for."""

    code: str
    client_id: str
    redirect_uri: str
    user_id: int
    scope: str
    code_challenge: str | None
    expires_at: float
    used: bool = False


@dataclass
class AccessToken:
    token: str
    user_id: int
    scope: str
    grant_code: str


def default_users() -> list[TestUser]:
    return [
        TestUser(583231, "octocat", "The Octocat", "octocat@github.com", "octocat@github.com"),
        TestUser(9919, "monalisa", "Mona Lisa Octocat", None, "mona@example.com"),
        TestUser(7776, "hubot", None, None, "hubot@example.com"),
    ]


@dataclass
class Store:
    users: dict[int, TestUser] = field(default_factory=dict)
    apps: dict[str, OAuthApp] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)
    tokens: dict[str, AccessToken] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.users = {user.id: user for user in default_users()}
            self.apps = {
                DEV_CLIENT_ID: OAuthApp(DEV_CLIENT_ID, DEV_CLIENT_SECRET, DEV_CALLBACK_URL)
            }
            self.grants.clear()
            self.tokens.clear()

    # -- users -------------------------------------------------------------------------------
    def user_by_login(self, login: str) -> TestUser | None:
        with self.lock:
            return next((u for u in self.users.values() if u.login.lower() == login.lower()), None)

    def add_user(
        self,
        login: str,
        *,
        user_id: int | None = None,
        name: str | None = None,
        email: str | None = None,
        public_email: bool = False,
    ) -> TestUser:
        """A new test user (a fresh numeric id unless given); ValueError for a bad login or a
        login or id already taken."""
        if not LOGIN.match(login):
            raise ValueError(f"{login!r} is not a GitHub login (letters, digits, single hyphens)")
        with self.lock:
            if self.user_by_login(login) is not None:
                raise ValueError(f"the login {login!r} is taken")
            new_id = user_id if user_id is not None else max([10_000_000, *self.users]) + 1
            if new_id in self.users:
                raise ValueError(f"the id {new_id} is taken")
            primary = email or f"{login.lower()}@example.com"
            user = TestUser(new_id, login, name, primary if public_email else None, primary)
            self.users[new_id] = user
            return user

    def rename_user(self, user_id: int, login: str) -> TestUser:
        """GitHub lets people change their login; the id stays."""
        if not LOGIN.match(login):
            raise ValueError(f"{login!r} is not a GitHub login")
        with self.lock:
            user = self.users[user_id]
            if self.user_by_login(login) not in (None, user):
                raise ValueError(f"the login {login!r} is taken")
            user.login = login
            return user

    def change_email(self, user_id: int, email: str) -> TestUser:
        """GitHub lets people change their primary email (the public one follows if public)."""
        if "@" not in email or len(email) > 254:
            raise ValueError(f"{email!r} is not an email address")
        with self.lock:
            user = self.users[user_id]
            if user.public_email is not None:
                user.public_email = email
            user.primary_email = email
            return user

    # -- codes and tokens --------------------------------------------------------------------
    def issue_code(self, app: OAuthApp, redirect_uri: str, user: TestUser, **kwargs: Any) -> str:
        code = secrets.token_hex(10)  # GitHub's codes are 20 hex characters
        with self.lock:
            self.grants[code] = Grant(
                code=code,
                client_id=app.client_id,
                redirect_uri=redirect_uri,
                user_id=user.id,
                expires_at=time.time() + CODE_SECONDS,
                **kwargs,
            )
        return code

    def issue_token(self, grant: Grant) -> AccessToken:
        token = "gho_" + "".join(secrets.choice(_BASE62) for _ in range(36))
        with self.lock:
            issued = self.tokens[token] = AccessToken(token, grant.user_id, grant.scope, grant.code)
        return issued

    def user_for_token(self, token: str) -> tuple[TestUser, AccessToken] | None:
        with self.lock:
            issued = self.tokens.get(token)
            user = self.users.get(issued.user_id) if issued else None
            return (user, issued) if user is not None and issued is not None else None
