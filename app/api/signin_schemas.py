"""The queries and replies of the sign-in routes (/auth/...)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from app.api.schemas import Millis, Query, Reply


class StartSignInQuery(Query):
    returnTo: str = Field(
        min_length=1,
        max_length=2048,
        description="Where the browser lands after signing in: a URL on one of FRONTEND_URL's "
        "origins. It gets no token; on failure it gets `?signinError=`.",
    )


class GitHubCallbackQuery(Query):
    """What GitHub sends the browser back with."""

    code: str | None = Field(None, max_length=512)
    state: str | None = Field(None, max_length=512)
    error: str | None = Field(None, max_length=200)


class SessionUserOut(Reply):
    id: str = Field(description="The API's user id: github:<GitHub's numeric id>")
    login: str | None = Field(description="The GitHub login at sign-in (for display; can change)")
    name: str | None
    email: str | None


class SessionReply(Reply):
    accessToken: str = Field(
        description="Send as Authorization: Bearer <accessToken>; keep it in memory only"
    )
    tokenType: Literal["Bearer"]
    expiresIn: int = Field(description="Seconds the access token is valid for")
    expiresAt: Millis
    sessionExpiresAt: Millis = Field(description="When the sign-in itself ends")
    user: SessionUserOut


class SignOutReply(Reply):
    signedOut: Literal[True]
