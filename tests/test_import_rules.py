"""The import and transaction rules of app/, checked from the source with ``ast`` (nothing is
imported):

* only ``app/db.py`` commits or rolls back a transaction (everyone else uses its
  ``unit_of_work()`` and friends), so one place decides where a unit of work ends;
* a dialect is named (``dialect_name()``, ``"postgresql"``/``"sqlite"``) only in ``app/db.py``,
  the ``*/store.py`` modules that own SQL, the configuration and the table definitions;
* no import circle among the modules of ``app/`` (every import counts, also those inside
  functions), and no module of ``app/`` over 400 lines;
* test modules import shared helpers from ``tests/support.py``, never from a conftest;
* the routes (``app/api/*``) import, of the app, only what is on this list:

  - billing's doors: a concept's ``service`` module (``app.billing.<concept>.service``),
    ``app.billing.errors`` (the named failures), ``app.billing.plans`` and
    ``app.billing.plans_table`` (the plans and their public table);
  - their own package ``app.api.*`` (parsing, schemas, replies, the OpenAPI builder);
  - request infrastructure that knows nothing of billing's tables: ``app.auth``,
    ``app.signin.*``, ``app.errors``, ``app.ratelimit``, ``app.audit``, ``app.observability.*``,
    ``app.health`` (the probes), ``app.security`` (the HTTP guards and headers) and
    ``app.safe_text``.

  Everything else is refused: billing's stores, handlers and other internals, the database
  (``app.db``, ``app.extensions``, ``app.models``) and Stripe (``app.stripe.*``), so a route can't
  skip the service that holds the rule.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from test_import_graph import ROOT, cycles, import_graph

APP = ROOT / "app"


def app_modules() -> dict[str, Path]:
    found = {}
    for path in sorted(APP.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def transaction_calls(source: str) -> list[str]:
    """`x.commit()` / `x.rollback()` calls (a session's, a connection's) in `source`."""
    return [
        f"line {node.lineno}: .{node.func.attr}()"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("commit", "rollback")
    ]


def test_only_the_database_module_commits_or_rolls_back() -> None:
    offenders = {
        name: calls
        for name, path in app_modules().items()
        if name != "app.db" and (calls := transaction_calls(path.read_text()))
    }
    assert offenders == {}


def test_the_commit_check_sees_a_commit() -> None:
    assert transaction_calls("def f(s):\n    s.session.commit()\n") == ["line 2: .commit()"]


DIALECT_OWNERS = ("app.db", "app.db_writer", "app.config", "app.models")


def names_a_dialect(source: str) -> bool:
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and node.value in ("postgresql", "sqlite"):
            return True
        if isinstance(node, ast.Name | ast.alias) and "dialect_name" in (
            getattr(node, "id", None),
            getattr(node, "name", None),
        ):
            return True
    return False


def test_dialects_are_named_only_by_the_modules_that_own_sql() -> None:
    offenders = [
        name
        for name, path in app_modules().items()
        if name not in DIALECT_OWNERS
        and not name.endswith((".store", "_store"))
        and names_a_dialect(path.read_text())
    ]
    assert offenders == []


def test_the_dialect_check_sees_a_branch() -> None:
    assert names_a_dialect('if dialect_name() == "postgresql":\n    pass\n')
    assert not names_a_dialect("x = 1\n")


# What the routes may import of the app (the docstring's list).
ROUTE_INFRASTRUCTURE = (
    "app.auth",
    "app.errors",
    "app.ratelimit",
    "app.audit",
    "app.health",
    "app.safe_text",
    "app.security",
)
ROUTE_INFRASTRUCTURE_PACKAGES = ("app.api.", "app.signin.", "app.observability.")
BILLING_DOORS = ("app.billing.errors", "app.billing.plans", "app.billing.plans_table")


def route_may_import(module: str) -> bool:
    if module.startswith("app.billing."):
        return module in BILLING_DOORS or (module.count(".") == 3 and module.endswith(".service"))
    return (
        module in ROUTE_INFRASTRUCTURE
        or module == "app.observability"
        or module.startswith(ROUTE_INFRASTRUCTURE_PACKAGES)
    )


def test_the_route_rule_refuses_internals_and_allows_doors() -> None:
    assert route_may_import("app.billing.usage.service")
    assert route_may_import("app.billing.webhooks.service")
    assert route_may_import("app.billing.plans")
    assert route_may_import("app.signin.flow")
    assert not route_may_import("app.billing.webhooks.receive")
    assert not route_may_import("app.billing.subscriptions.store")
    assert not route_may_import("app.billing.usage.service.extra")
    assert not route_may_import("app.db")
    assert not route_may_import("app.models")
    assert not route_may_import("app.stripe.gateway")
    assert not route_may_import("app.cli.billing")


@pytest.mark.parametrize("route", sorted(m for m in import_graph() if m.startswith("app.api.")))
def test_routes_reach_billing_only_through_its_services(route: str) -> None:
    forbidden = sorted(m for m in import_graph()[route] if not route_may_import(m))
    assert forbidden == [], f"{route} imports {forbidden}"


def test_no_import_circles_under_app() -> None:
    graph = {
        name: {m for m in imported if m.startswith("app")}
        for name, imported in import_graph().items()
        if name.startswith("app")
    }
    assert len(graph) > 50  # the check sees the app
    assert cycles(graph) == []


MAX_APP_MODULE_LINES = 400


def test_no_app_module_is_over_400_lines() -> None:
    sizes = {name: len(path.read_text().splitlines()) for name, path in app_modules().items()}
    assert {name: n for name, n in sizes.items() if n > MAX_APP_MODULE_LINES} == {}


def test_test_modules_import_helpers_from_support_not_conftest() -> None:
    """conftest files hold fixtures and hooks; what tests share is in tests/support.py."""
    offenders = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        if path.name == "conftest.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("conftest"):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []
