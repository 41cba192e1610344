"""`flask auth ...` (here) and `flask billing ...` (`app/cli/billing.py`) commands."""

from __future__ import annotations

import json

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from app.auth import issue_dev_token
from app.cli.billing import billing_cli
from app.cli.refunds import refund_command as _refund_command  # noqa: F401 (registers it)

auth_cli = AppGroup("auth", help="Identity helpers: dev tokens, ending a user's sign-ins.")


@auth_cli.command("token")
@click.argument("user_id")
@click.option("--email", default=None, help="Email claim to include.")
@click.option("--ttl", default=86400, show_default=True, help="Lifetime in seconds.")
def token_command(user_id: str, email: str | None, ttl: int) -> None:
    """Print a signed HS256 token for USER_ID (needs AUTH_JWT_SECRET)."""
    if not current_app.config.get("AUTH_JWT_SECRET"):
        raise click.ClickException("AUTH_JWT_SECRET is not set (tokens come from your IdP).")
    longest = int(current_app.config.get("AUTH_MAX_TOKEN_LIFETIME_SECONDS") or 86400)
    if ttl > longest:
        raise click.ClickException(
            f"--ttl {ttl} is longer than AUTH_MAX_TOKEN_LIFETIME_SECONDS ({longest}): "
            "the API would refuse the token."
        )
    click.echo(issue_dev_token(current_app.config, user_id, email=email, ttl_seconds=ttl))


@auth_cli.command("sign-out")
@click.argument("user_id")
def sign_out_command(user_id: str) -> None:
    """End every GitHub sign-in of USER_ID (e.g. github:583231) now."""
    from app.signin.sessions import end_user_sessions

    click.echo(f"{end_user_sessions(user_id)} session(s) of {user_id} ended")


@click.command("openapi")
@click.option("--output", "-o", default="-", help="File to write (default: stdout).")
def openapi_command(output: str) -> None:
    """Write the OpenAPI document built from the routes (as served at /api/openapi.json)."""
    from app.api.openapi import build_openapi

    text = json.dumps(build_openapi(current_app), indent=2) + "\n"
    if output == "-":
        click.echo(text, nl=False)
    else:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(text)


def register_cli(app: Flask) -> None:
    from app.release import release_command

    app.cli.add_command(auth_cli)
    app.cli.add_command(billing_cli)
    app.cli.add_command(openapi_command)
    app.cli.add_command(release_command)
