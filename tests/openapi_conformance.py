"""Every response the suite sees is checked against the app's own OpenAPI document.

`request_finished` fires for each response of every app instance in the run (test client and
live servers alike). For each documented route the checker looks up the operation by the
matched rule and the method, then requires that the status is documented, that a JSON body
validates against that status's schema (jsonschema, draft 2020-12, the document's components
as the resource), and that the headers the document promises or the app sends are declared.
Mismatches are collected; an autouse fixture in conftest fails the test that produced them.
"""

from __future__ import annotations

import threading
from typing import Any

from flask import Flask, Response, request
from jsonschema import Draft202012Validator

from app.api.openapi import build_openapi, openapi_path

CHECKED_HEADERS = ("Idempotent-Replayed", "Retry-After")


class ConformanceChecker:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.seen: set[tuple[str, str, str]] = set()
        self.checked = 0
        self._lock = threading.Lock()
        self._documents: dict[int, dict[str, Any]] = {}
        self._validators: dict[tuple[int, str], Draft202012Validator] = {}

    def document(self, app: Flask) -> dict[str, Any]:
        key = id(app)
        if key not in self._documents:
            self._documents[key] = build_openapi(app)
        return self._documents[key]

    def _validator(self, app: Flask, schema: dict[str, Any]) -> Draft202012Validator:
        key = (id(app), repr(schema))
        if key not in self._validators:
            components = self.document(app)["components"]
            self._validators[key] = Draft202012Validator({**schema, "components": components})
        return self._validators[key]

    def check(self, app: Flask, method: str, rule: Any, response: Response) -> list[str]:
        """The mismatches of one response (also recorded)."""
        if rule is None:
            return []
        path = openapi_path(rule)
        operation = self.document(app)["paths"].get(path, {}).get(method.lower())
        if operation is None:
            return []  # not in the document: pages, assets, the demo
        where = f"{method} {path} -> {response.status_code}"
        found: list[str] = []
        documented = operation["responses"].get(str(response.status_code))
        if documented is None:
            found.append(f"{where}: status not documented")
        else:
            content = documented.get("content", {}).get("application/json")
            if content is not None:
                if response.mimetype != "application/json":
                    found.append(f"{where}: {response.mimetype}, documented JSON")
                else:
                    body = response.get_json(silent=True)
                    for error in self._validator(app, content["schema"]).iter_errors(body):
                        at = "/".join(str(p) for p in error.absolute_path) or "(body)"
                        found.append(f"{where}: {at}: {error.message[:300]}")
            declared = set(documented.get("headers", {}))
            for name in CHECKED_HEADERS:
                if name in response.headers and name not in declared:
                    found.append(f"{where}: header {name} sent but not documented")
            if "Retry-After" in declared and "Retry-After" not in response.headers:
                found.append(f"{where}: documented Retry-After missing")
        with self._lock:
            self.checked += 1
            self.seen.add((method, path, str(response.status_code)))
            self.problems.extend(found)
        return found

    def on_response(self, sender: Flask, response: Response, **_: Any) -> None:
        self.check(sender, request.method, request.url_rule, response)

    def take_problems(self) -> list[str]:
        with self._lock:
            problems, self.problems = self.problems, []
        return problems
