"""``python -m stripe_sandbox trigger EVENT``: make an event happen through the API, as
``stripe trigger`` does, against a running sandbox."""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
from typing import Any

from .client import ApiError, Client, default_api_base, default_key
from .recipes import RECIPES, Step

_REF = re.compile(r"\$\{([a-z_]+):([A-Za-z0-9_.]+)\}")


HELP = "make an event happen through the API, like `stripe trigger`"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("event", nargs="?", help="event type, e.g. checkout.session.completed")
    parser.add_argument("--list", action="store_true", help="list the supported event types")
    parser.add_argument(
        "--add",
        action="append",
        default=[],
        metavar="STEP:PARAM=VALUE",
        help="add or replace a parameter of a step, e.g. checkout_session:metadata.userId=u1",
    )
    parser.add_argument(
        "--remove", action="append", default=[], metavar="STEP:PARAM", help="drop a parameter"
    )
    parser.add_argument("--api-base", default=default_api_base(), help="the sandbox's URL")
    parser.add_argument("--api-key", default=default_key(), help="any sk_test_ key")
    parser.add_argument(
        "--no-wait", action="store_true", help="don't wait for the webhooks to be delivered"
    )


def run(args: argparse.Namespace) -> int:
    if args.list:
        print("\n".join(sorted(RECIPES)))
        return 0
    if not args.event:
        print("usage: python -m stripe_sandbox trigger EVENT (--list shows them)", file=sys.stderr)
        return 2
    steps = RECIPES.get(args.event)
    if steps is None:
        print(f"Trigger failed: event {args.event!r} is not supported", file=sys.stderr)
        print("Supported events:\n  " + "\n  ".join(sorted(RECIPES)), file=sys.stderr)
        return 1
    try:
        steps = customized(steps, args.add, args.remove)
    except ValueError as exc:
        print(f"Trigger failed: {exc}", file=sys.stderr)
        return 1
    client = Client(args.api_base, args.api_key)
    print(f"Setting up fixture for: {args.event}", flush=True)
    print(f"Running fixture for: {args.event}", flush=True)
    try:
        play(client, steps)
    except (ApiError, OSError, KeyError) as exc:
        print(f"Trigger failed: {describe(exc)}", file=sys.stderr)
        return 1
    if not args.no_wait:
        _wait_for_deliveries(client)
    print("Trigger succeeded! Check dashboard for event details.", flush=True)
    return 0


def describe(exc: Exception) -> str:
    if isinstance(exc, ApiError):
        return f"Request failed, status={exc.status}, body={exc.error.get('message')}"
    if isinstance(exc, KeyError):
        return f"a step refers to {exc} that an earlier answer does not have"
    return f"could not reach the sandbox ({exc})"


def customized(steps: list[Step], add: list[str], remove: list[str]) -> list[Step]:
    """The recipe with ``--add step:a.b=value`` and ``--remove step:a.b`` applied."""
    out = [{**step, "params": dict(step.get("params") or {})} for step in steps]
    by_name = {step["name"]: step for step in out}
    for spec, removing in [(a, False) for a in add] + [(r, True) for r in remove]:
        name, sep, rest = spec.partition(":")
        if not sep or name not in by_name or (not removing and "=" not in rest):
            raise ValueError(
                f"{spec!r}: expected STEP:PARAM{'' if removing else '=VALUE'} with STEP one of "
                + ", ".join(by_name)
            )
        path, _, value = rest.partition("=")
        _set(by_name[name]["params"], path.split("."), None if removing else value)
    return out


def _set(params: dict[str, Any], path: list[str], value: str | None) -> None:
    for key in path[:-1]:
        child = params.get(key)
        params[key] = child = dict(child) if isinstance(child, dict) else {}
        params = child
    if value is None:
        params.pop(path[-1], None)
    else:
        params[path[-1]] = value


def play(client: Client, steps: list[Step]) -> dict[str, dict[str, Any]]:
    """Run the steps in order; returns each step's answer by name."""
    answers: dict[str, dict[str, Any]] = {}
    for step in steps:
        if "page" in step:
            status = client.form(resolve(step["page"], answers), step["form"])
            if status >= 400:
                raise ApiError(status, {"message": f"the hosted page answered {status}"})
            answers[step["name"]] = {"status": status}
            continue
        path = resolve(step["path"], answers)
        params = resolve(step["params"], answers)
        try:
            answers[step["name"]] = client.request(step["method"], path, params)
        except ApiError as exc:
            if not step.get("expect_error"):
                raise
            answers[step["name"]] = {"error": exc.error}
    return answers


def resolve(value: Any, answers: dict[str, dict[str, Any]]) -> Any:
    """Replace ``${step:dotted.path}`` with that value of an earlier answer."""
    if isinstance(value, dict):
        return {k: resolve(v, answers) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, answers) for v in value]
    if not isinstance(value, str):
        return value

    def lookup(match: re.Match[str]) -> str:
        found: Any = answers[match.group(1)]
        for key in match.group(2).split("."):
            found = found[key]
        return str(found)

    return _REF.sub(lookup, value)


def _wait_for_deliveries(client: Client) -> None:
    """Let the sandbox deliver what the trigger caused (its control API; best effort)."""
    with contextlib.suppress(ApiError, OSError):
        client.request("POST", "/_sandbox/flush", {"timeout": "10"})
