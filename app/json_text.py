"""JSON text read fast: orjson (C) where it reads the text as the standard library does, the
standard library otherwise, so the values and errors are always json.loads' own. orjson reads
an integer over 64 bits as a float, so a text holding a run of 19 digits or more (rare: ids and
amounts are shorter) is left to json.loads; so is any text orjson refuses (NaN, a lone
surrogate, nesting past its limit). Stored events' `data` is read this way (the database
driver's loads) and so is each delivery: parsing subscription events took ~18% of the applier's
CPU, and orjson reads one in ~0.4x the time (docs/performance.md, ninth pass)."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

_LONG_NUMBER = re.compile("[0-9]{19}")
_LONG_NUMBER_BYTES = re.compile(b"[0-9]{19}")


def loads(text: str | bytes) -> Any:
    if isinstance(text, str):
        long_number = _LONG_NUMBER.search(text) is not None
    else:
        long_number = _LONG_NUMBER_BYTES.search(text) is not None
    if not long_number:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)
