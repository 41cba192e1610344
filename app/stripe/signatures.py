"""Stripe's webhook signature checked locally, for the webhook fast path
(app/api/webhook_fast_path.py): nothing here talks to Stripe. The gateway's `verify_webhook`
(the SDK's check) stays the judge of everything this does not accept plainly."""

from __future__ import annotations

import hmac
import time


def plainly_signed_text(
    payload: bytes, signature: str, *, secret: str, tolerance: int = 300
) -> str | None:
    """The body as text when `signature` is a plain, valid and fresh Stripe signature of it
    (one `t` of digits, `v1` hex digests, the SDK's scheme), else None: the gateway's
    `verify_webhook` then refuses it or decides the unusual case, with the reason. Never
    accepts what `verify_webhook` refuses; the HMAC is computed once over the bytes as received
    (the SDK decodes the body, re-encodes it and formats the signed string: a third of the
    webhook fast path's verify time)."""
    if not secret.strip():
        return None
    stamp: bytes | None = None
    digests = []
    for part in signature.split(","):
        name, equals, value = part.partition("=")
        if not equals or part != part.strip():
            return None  # the SDK (or our future check) may read it otherwise
        if name == "t":
            if stamp is not None or not (value.isascii() and value.isdigit()):
                return None
            stamp = value.encode()
        elif name == "v1":
            if not (value.isascii() and len(value) == 64):
                return None
            digests.append(value)
    if stamp is None or not digests:
        return None
    timestamp = int(stamp)
    now = time.time()
    # The SDK's window (stale when older than `tolerance`, none when 0) and ours ahead.
    if (tolerance and timestamp < now - tolerance) or timestamp > now + tolerance:
        return None
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return None
    # "%d." % timestamp is the SDK's signed prefix: digits without leading zeros.
    prefix = b"%d." % timestamp
    expected = hmac.digest(secret.encode("utf-8"), prefix + payload, "sha256").hex()
    if not any(hmac.compare_digest(expected, digest) for digest in digests):
        return None
    return text
