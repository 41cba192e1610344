"""The benchmark harness's pure helpers (bench/helpers.py) and its wire counter
(bench/pgcount.py), so `make bench` can't rot silently. The bench itself is not run here: no
timed tests."""

from __future__ import annotations

import json
import os
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import stripe
from sqlalchemy.engine import make_url

from bench.helpers import (
    FrontendParser,
    median,
    parse_wrk_result,
    percentile,
    ratio,
    request_line,
    sign_payload,
)
from bench.report import README_END, README_START, render, targets, update_readme
from tests.support import is_postgres

ROOT = Path(__file__).resolve().parents[1]

SECRET = "whsec_bench_helpers_test"


def test_percentile_is_nearest_rank() -> None:
    values = list(range(100, 0, -1))  # 1..100, unsorted
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile(values, 0) == 1
    assert percentile([7.5], 99) == 7.5
    assert percentile([1, 2, 3, 4], 50) == 2


def test_percentile_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1], 101)


def test_median_and_ratio() -> None:
    assert median([3, 1, 2]) == 2
    assert median([1, 2, 3, 10]) == 2.5
    assert ratio(50, 200) == 0.25
    assert ratio(5, 0) is None


def test_signature_is_accepted_by_the_stripe_sdk() -> None:
    payload = json.dumps({"id": "evt_1", "object": "event", "type": "invoice.paid"})
    header = sign_payload(payload, SECRET, int(time.time()))
    assert stripe.WebhookSignature.verify_header(payload, header, SECRET, 300)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(payload + " ", header, SECRET, 300)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(payload, header, "whsec_other", 300)


def test_signature_too_old_is_refused() -> None:
    payload = "{}"
    header = sign_payload(payload, SECRET, 1_000_000_000)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(payload, header, SECRET, 300)


def test_request_line_round_trips_and_refuses_separators() -> None:
    body = json.dumps({"text": "a\tb\nc"})  # escaped by json.dumps: no raw tab or newline
    line = request_line("/api/x", "Bearer t", body)
    path, value, rest = line.rstrip("\n").split("\t", 2)
    assert (path, value, json.loads(rest)) == ("/api/x", "Bearer t", {"text": "a\tb\nc"})
    assert request_line("/api/me", "Bearer t") == "/api/me\tBearer t\t\n"
    with pytest.raises(ValueError):
        request_line("/api/x", "a\tb")
    with pytest.raises(ValueError):
        request_line("/api/x", "v", "{}\n")


def test_parse_wrk_result() -> None:
    stdout = (
        "Running 2s test @ http://127.0.0.1:1\n"
        'BENCH_RESULT {"requests": 500, "duration_us": 2000000, "p50_us": 12000, '
        '"p99_us": 80500, "max_us": 90000, "wrapped": 1, "errors": {"connect": 0, "read": 0, '
        '"write": 0, "status": 3, "timeout": 1}}\n'
    )
    result = parse_wrk_result(stdout)
    assert result["rps"] == 250
    assert result["p50_ms"] == 12
    assert result["p99_ms"] == 80.5
    assert result["non_2xx"] == 3
    assert result["errors"] == 4
    assert result["wrapped"] == 1
    with pytest.raises(ValueError):
        parse_wrk_result("Running 2s test\n")


def _message(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("!I", len(payload) + 4) + payload


def _startup() -> bytes:
    ssl_request = struct.pack("!II", 8, 80877103)
    params = b"user\0postgres\0database\0db\0\0"
    startup = struct.pack("!II", 8 + len(params), 196608) + params
    return ssl_request + startup


def test_frontend_parser_counts_statements_and_round_trips_in_any_chunking() -> None:
    stream = (
        _startup()
        + _message(b"Q", b"BEGIN\0")
        # extended protocol, unnamed statement: Parse, Bind, Describe, Execute, Sync
        + _message(b"P", b"\0SELECT $1\0\0\0")
        + _message(b"B", b"\0\0" + b"\0" * 6)
        + _message(b"D", b"P\0")
        + _message(b"E", b"\0\0\0\0\0")
        + _message(b"S", b"")
        # a named prepared statement, then executed again by name only
        + _message(b"P", b"_pg3_0\0UPDATE t SET x = 1\0\0\0")
        + _message(b"B", b"\0_pg3_0\0" + b"\0" * 6)
        + _message(b"E", b"\0\0\0\0\0")
        + _message(b"S", b"")
        + _message(b"B", b"\0_pg3_0\0" + b"\0" * 6)
        + _message(b"E", b"\0\0\0\0\0")
        + _message(b"S", b"")
        + _message(b"Q", b"COMMIT\0")
    )
    for chunk in (1, 7, len(stream)):
        parser = FrontendParser()
        for start in range(0, len(stream), chunk):
            parser.feed(stream[start : start + chunk])
        counts = parser.counts
        assert counts.statements == 5
        assert counts.round_trips == 5
        assert counts.queries == [
            "BEGIN",
            "SELECT $1",
            "UPDATE t SET x = 1",
            "UPDATE t SET x = 1",
            "COMMIT",
        ]


@pytest.mark.skipif(not is_postgres(), reason="counts a real PostgreSQL connection")
def test_counting_proxy_counts_what_psycopg_sends(postgres_url: str) -> None:
    from bench.pgcount import CountingProxy

    url = make_url(postgres_url)
    proxy = CountingProxy(url.host or "127.0.0.1", url.port or 5432)
    try:
        proxied = url.set(
            drivername="postgresql", host="127.0.0.1", port=proxy.port, query={"sslmode": "disable"}
        )
        dsn = proxied.render_as_string(hide_password=False)
        with psycopg.connect(dsn) as conn:
            before = proxy.snapshot()
            conn.execute("SELECT %s::int", (1,))
            conn.execute("SELECT 2")
            conn.commit()
            counted = proxy.snapshot().minus(before)
        assert counted.statements == 4  # BEGIN, two SELECTs, COMMIT
        assert counted.round_trips == 4
        assert counted.queries[0] == "BEGIN" and counted.queries[-1] == "COMMIT"
    finally:
        proxy.close()


@pytest.fixture
def postgres_url() -> str:
    return os.environ["TEST_DATABASE_URL"]


@pytest.fixture
def inbox_url(postgres_url: str) -> Iterator[str]:
    """A schema of its own holding the columns of webhook_events that `make bench` reads."""
    schema = f"bench_drain_{os.getpid()}"
    dsn = make_url(postgres_url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(
            f"CREATE TABLE {schema}.webhook_events"
            " (id text PRIMARY KEY, processed boolean NOT NULL, parked_at timestamptz)"
        )
    try:
        yield f"{dsn}{'&' if '?' in dsn else '?'}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.mark.skipif(not is_postgres(), reason="make bench runs on PostgreSQL only")
def test_make_bench_waits_for_the_applier_before_its_reads(inbox_url: str) -> None:
    """Ours answers a webhook before applying it: the reads measured after the webhook runs
    shared the machine with 90 s of applying until the bench waited for the backlog first."""
    from bench.harness import drain_inbox

    with psycopg.connect(inbox_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO webhook_events VALUES ('evt_1', false, NULL), ('evt_2', false, NULL),"
            " ('evt_parked', false, now()), ('evt_done', true, NULL)"
        )

    def apply_later() -> None:
        time.sleep(1.0)
        with psycopg.connect(inbox_url, autocommit=True) as conn:
            conn.execute("UPDATE webhook_events SET processed = true WHERE parked_at IS NULL")

    applier = threading.Thread(target=apply_later)
    applier.start()
    waited = drain_inbox(inbox_url)
    applier.join()
    assert waited >= 0.9  # returned only once both were applied; the parked one does not wait
    assert drain_inbox(inbox_url) < 0.5

    with psycopg.connect(inbox_url, autocommit=True) as conn:
        conn.execute("INSERT INTO webhook_events VALUES ('evt_stuck', false, NULL)")
    with pytest.raises(RuntimeError, match="did not catch up"):
        drain_inbox(inbox_url, limit=1)


# -- the report (bench/report.py), from the committed results ------------------------------------


def _results() -> dict[str, Any]:
    return json.loads((ROOT / "bench" / "results" / "latest.json").read_text())


def test_report_renders_every_section_of_the_committed_results() -> None:
    text = render(_results())
    for heading in ("## Webhook ingest and reads", "## Checkout create", "## Growth", "## Targets"):
        assert heading in text
    assert "| webhook distinct |" in text


def test_targets_say_met_or_missed_from_the_figures() -> None:
    results = _results()
    hooks = results["webhooks"]["webhook distinct"]
    hooks["app"]["rps"], hooks["bare"]["rps"] = 80.0, 100.0
    hooks["app"]["p99_ms"], hooks["bare"]["p99_ms"] = 30.0, 10.0
    rows = "\n".join(targets(results))
    assert "| webhook throughput ≥ 0.75x bare | 0.80 | met |" in rows
    assert "| webhook p99 ≤ 2x bare's | 3.0 | **missed** |" in rows


def test_readme_block_is_replaced_and_nothing_else(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nbefore\n{README_START}\nold figures\n{README_END}\nafter\n")
    update_readme(_results(), readme)
    text = readme.read_text()
    assert text.startswith("# Title\n\nbefore\n") and text.endswith(f"{README_END}\nafter\n")
    assert "old figures" not in text and "| webhook distinct |" in text
