"""``python -m stripe_sandbox listen --forward-to URL``: like ``stripe listen``, against a
running sandbox. It registers a webhook endpoint for ``URL`` (all events, or ``--events``),
prints its signing secret, then one line per event and per delivery attempt until
interrupted, and removes the endpoint on the way out. Without ``--forward-to`` it only
prints the events as they happen."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import time
from datetime import datetime
from types import FrameType
from typing import Any

from ..version import API_VERSION
from .client import ApiError, Client, default_api_base, default_key

POLL_SECONDS = 0.25


HELP = "forward events to a URL, signed, like `stripe listen`"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--forward-to", "-f", help="URL to send events to, e.g. localhost:3001/api/webhooks/stripe"
    )
    parser.add_argument(
        "--events", "-e", default="*", help="comma-separated event types (default: all)"
    )
    parser.add_argument(
        "--print-secret",
        action="store_true",
        help="register the endpoint, print only its signing secret and exit (it stays registered)",
    )
    parser.add_argument("--api-base", default=default_api_base(), help="the sandbox's URL")
    parser.add_argument("--api-key", default=default_key(), help="any sk_test_ key")


def forward_url(target: str) -> str:
    """``localhost:3001/hook`` -> ``http://localhost:3001/hook`` (as Stripe's CLI accepts)."""
    return target if target.startswith(("http://", "https://")) else f"http://{target}"


def run(args: argparse.Namespace) -> int:
    client = Client(args.api_base, args.api_key)
    try:
        if not args.forward_to:
            if args.print_secret:
                print("--print-secret needs --forward-to", file=sys.stderr)
                return 2
            return _print_events(client)
        return _forward(client, args)
    except ApiError as exc:
        print(f"listen failed: {exc.error.get('message') or exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(
            f"listen failed: could not reach the sandbox at {args.api_base} ({exc})",
            file=sys.stderr,
        )
        return 1


class _Stop(Exception):
    pass


def _stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def _forward(client: Client, args: argparse.Namespace) -> int:
    events = [e.strip() for e in args.events.split(",") if e.strip()] or ["*"]
    endpoint = client.request(
        "POST",
        "/v1/webhook_endpoints",
        {
            "url": forward_url(args.forward_to),
            "enabled_events": events,
            "description": "stripe_sandbox listen",
            "api_version": API_VERSION,
        },
    )
    if args.print_secret:
        print(endpoint["secret"], flush=True)
        return 0
    signal.signal(signal.SIGTERM, _stop)
    try:
        print(
            f"> Ready! You are using Stripe API Version [{API_VERSION}]. Your webhook signing "
            f"secret is {endpoint['secret']} (^C to quit)",
            flush=True,
        )
        _follow_deliveries(client, endpoint["id"])
    except (_Stop, KeyboardInterrupt):
        pass
    finally:
        with contextlib.suppress(ApiError, OSError):
            client.request("DELETE", f"/v1/webhook_endpoints/{endpoint['id']}")
    return 0


def _stamp() -> str:
    return datetime.now().strftime("%Y-%m-%d %H:%M:%S")


def _follow_deliveries(client: Client, endpoint_id: str) -> None:
    """Print the endpoint's deliveries as they happen; on the way out, once more, so what
    arrived since the last look is shown too."""
    progress: dict[str, Any] = {"seen": 0, "announced": set()}
    try:
        while True:
            _print_new_deliveries(client, endpoint_id, progress)
            time.sleep(POLL_SECONDS)
    finally:
        with contextlib.suppress(ApiError, OSError, _Stop):
            _print_new_deliveries(client, endpoint_id, progress)


def _print_new_deliveries(client: Client, endpoint_id: str, progress: dict[str, Any]) -> None:
    log = client.request("GET", "/_sandbox/deliveries").get("data", [])
    mine = [d for d in log if d.get("endpoint_id") == endpoint_id]
    if len(mine) < progress["seen"]:
        progress["seen"] = 0  # the sandbox was reset
    for delivery in mine[progress["seen"] :]:
        _print_delivery(delivery, progress["announced"])
    progress["seen"] = len(mine)


def _print_delivery(delivery: dict[str, Any], announced: set[str]) -> None:
    event_id = delivery["event_id"]
    if event_id not in announced:
        announced.add(event_id)
        print(f"{_stamp()}   --> {delivery['type']} [{event_id}]", flush=True)
    status = delivery["status"] if delivery["status"] is not None else "ERR"
    error = f" ({delivery['error']})" if delivery.get("error") else ""
    print(f"{_stamp()}  <--  [{status}] POST {delivery['url']} [{event_id}]{error}", flush=True)


def _print_events(client: Client) -> int:
    print("> Ready! Printing the events as they happen (^C to quit)", flush=True)
    signal.signal(signal.SIGTERM, _stop)
    since = int(time.time())
    printed: set[str] = set()
    try:
        while True:
            page = client.request("GET", "/v1/events", {"created": {"gte": since}, "limit": 100})
            for event in reversed(page.get("data", [])):
                if event["id"] not in printed:
                    printed.add(event["id"])
                    print(f"{_stamp()}   --> {event['type']} [{event['id']}]", flush=True)
            time.sleep(POLL_SECONDS)
    except (_Stop, KeyboardInterrupt):
        return 0
