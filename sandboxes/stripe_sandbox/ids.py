"""Stripe-style object ids (``cus_…``, ``sub_…``, ``cs_test_…``) and secrets."""

from __future__ import annotations

import secrets
import string

_ALPHABET = string.ascii_letters + string.digits

# prefix -> length of the random part (roughly what Stripe uses)
_LENGTHS: dict[str, int] = {
    "cus": 14,
    "prod": 14,
    "si": 14,
    "req": 14,
    "cs_test": 58,
    "whsec": 32,
}


def random_token(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def new_id(prefix: str) -> str:
    """A fresh id such as ``cus_Qx8…`` for the given prefix."""
    return f"{prefix}_{random_token(_LENGTHS.get(prefix, 24))}"
