"""JSON is read by orjson where it can and by the standard library where it cannot
(app/json_text.py): the same values either way, so an event orjson refuses (an integer over
64 bits, say) is still recorded, stored and applied, never stuck in the applier's claim."""

from __future__ import annotations

import json

import pytest
from flask import Flask
from flask.testing import FlaskClient
from support import Billing, post_webhook
from test_webhook_endpoint import event, stored_events

from app import json_text

TEXTS = [
    '{"a": 1, "b": [true, false, null], "c": "\\u00e9\\ud83d\\ude00", "d": 1.5e300}',
    '{"big": 123456789012345678901234567890}',  # over 64 bits: orjson makes it a float
    '{"nan": NaN, "inf": -Infinity}',  # json.loads reads these, orjson does not
    '{"k": 1, "k": 2}',  # the last one wins for both
    '"\\ud800"',  # a lone surrogate, escaped
    '"\ud800"',  # and as a character of the text
]


@pytest.mark.parametrize("text", TEXTS)
def test_every_text_reads_as_json_loads_reads_it(text: str) -> None:
    mine, theirs = json_text.loads(text), json.loads(text)
    assert repr(mine) == repr(theirs)  # NaN != NaN: compare what they print
    if "\ud800" not in text:  # the database driver hands it bytes
        assert repr(json_text.loads(text.encode())) == repr(theirs)


@pytest.mark.parametrize("text", ["{not json", '{"a": 1', "[" * 100_000 + "]" * 100_000])
def test_what_json_loads_refuses_is_refused_as_it_refuses_it(text: str) -> None:
    with pytest.raises((ValueError, RecursionError)) as mine:
        json_text.loads(text)
    with pytest.raises((ValueError, RecursionError)) as theirs:
        json.loads(text)
    assert mine.type is theirs.type


def test_an_event_holding_an_integer_over_64_bits_is_recorded_and_applied(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    huge = 2**70 + 1  # a float would lose the + 1
    delivered = event(
        "radar.early_fraud_warning.created", {"id": "issfr_big", "n": huge}, "evt_big"
    )
    reply = post_webhook(client, delivered, billing.webhook_secret)  # applies what it recorded
    assert reply.status_code == 200 and reply.get_json()["status"] == "recorded"
    [row] = [e for e in stored_events(app) if e.id == "evt_big"]  # read back through the driver
    assert row.processed and row.parked_at is None
    assert row.data["data"]["object"]["n"] == huge
