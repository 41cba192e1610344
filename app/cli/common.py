"""What every `flask billing` command shares: failing with exit status 1 (so cron and CI
notice) and reading `--since` times."""

from __future__ import annotations

from datetime import UTC, datetime

import click


def fail(message: str) -> None:
    click.echo(message, err=True)
    raise click.exceptions.Exit(1)


def parse_since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(
            "use an ISO date or time, e.g. 2026-11-01T00:00", param_hint="--since"
        ) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
