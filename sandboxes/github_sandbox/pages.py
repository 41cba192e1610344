"""The stand-in's HTML: the authorize page (pick or type a test user, then Authorize or Cancel)
and GitHub-like error pages. No script; a plain form."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape

from werkzeug.wrappers import Response

from .store import OAuthApp, TestUser

STYLE = """
body{font-family:system-ui,sans-serif;max-width:560px;margin:2em auto;padding:0 1em;color:#1f2328}
.box{border:1px solid #d0d7de;border-radius:6px;padding:1em 1.5em;margin:1em 0}
label{display:block;margin:.4em 0}input[type=text]{font-size:1em;padding:.3em;width:60%}
button{font-size:1em;padding:.4em 1em;margin:.5em .5em 0 0}#authorize{background:#1f883d;
color:#fff;border:0;border-radius:6px}.error{color:#cf222e;font-weight:bold}.muted{color:#59636e}
"""

# The authorize request's parameters the form carries back (GitHub keeps them the same way).
CARRIED = ("client_id", "redirect_uri", "state", "scope", "code_challenge", "code_challenge_method")


def page(title: str, body: str, status: int = 200) -> Response:
    html = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f'<body>\n<h1 id="title">{escape(title)}</h1>\n{body}\n</body></html>\n'
    )
    return Response(html, status=status, content_type="text/html; charset=utf-8")


def error_page(title: str, message: str, status: int) -> Response:
    return page(title, f'<p id="error" class="error" role="alert">{escape(message)}</p>', status)


def authorize_page(
    app: OAuthApp,
    users: Iterable[TestUser],
    params: Mapping[str, str],
    *,
    error: str | None = None,
    status: int = 200,
) -> Response:
    hidden = "".join(
        f'<input type="hidden" name="{name}" value="{escape(params.get(name, ""))}">'
        for name in CARRIED
    )
    wanted = params.get("login", "").lower()
    choices = list(users)
    if not any(user.login.lower() == wanted for user in choices):
        wanted = choices[0].login.lower() if choices else ""
    radios = "".join(_user_choice(user, user.login.lower() == wanted) for user in choices)
    scope = params.get("scope") or "(public information only)"
    problem = f'<p id="error" class="error" role="alert">{escape(error)}</p>' if error else ""
    body = f"""{problem}
<div class="box">
<p><strong>{escape(app.name)}</strong> wants to access your account.</p>
<p class="muted">Scopes: <code id="scope">{escape(scope)}</code></p>
<form method="post" action="/login/oauth/authorize" id="authorize-form">{hidden}
<fieldset><legend>Sign in as a test user</legend>{radios}
<label for="new-login">or a new test user with the login
<input type="text" id="new-login" name="new_login" maxlength="39" autocomplete="off"></label>
</fieldset>
<button type="submit" id="authorize" name="decision" value="authorize">Authorize</button>
<button type="submit" id="cancel" name="decision" value="deny">Cancel</button>
</form></div>
<p class="muted">This is the local GitHub stand-in (github_sandbox): no real account is used.</p>"""
    return page("Authorize application", body, status)


def _user_choice(user: TestUser, checked: bool) -> str:
    label = user.login + (f" ({user.name})" if user.name else "") + f" · id {user.id}"
    mark = " checked" if checked else ""
    return (
        f'<label><input type="radio" name="login" id="user-{escape(user.login)}" '
        f'value="{escape(user.login)}"{mark}> {escape(label)}</label>'
    )
