"""Property-based attack on the documented API: schemathesis generates requests from
/api/openapi.json (valid and invalid bodies, path and query values) and sends them with a valid
token. No answer may be a 5xx, and every answer must match its documented status, content type
and schema. Bounded (a fixed number of examples per operation, derandomized) to keep CI short."""

from __future__ import annotations

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.specs.openapi import checks
from support import Billing, auth_headers

EXAMPLES_PER_OPERATION = 30
CHECKS = [
    schemathesis.checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


@pytest.mark.slow
def test_generated_requests_never_500_and_match_the_schema(app: Flask, billing: Billing) -> None:
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    headers = auth_headers("schemathesis-user")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def exercise(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        exercise()
