"""The house rules of app/, checked from the source with ``ast`` (nothing is imported):

* only ``app/db.py`` commits or rolls back a transaction (everyone else uses its
  ``unit_of_work()`` and friends), so one place decides where a unit of work ends;
* a dialect is named (``dialect_name()``, ``"postgresql"``/``"sqlite"``) only in ``app/db.py``,
  the ``*/store.py`` modules that own SQL, the configuration and the table definitions;
* the routes (``app/api/``) reach billing only through its services, ``billing.errors`` and
  ``billing.plans``: never the database, the tables or Stripe directly.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from test_import_graph import ROOT, import_graph

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


DIALECT_OWNERS = ("app.db", "app.config", "app.models")


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
        and not name.endswith(".store")
        and names_a_dialect(path.read_text())
    ]
    assert offenders == []


def test_the_dialect_check_sees_a_branch() -> None:
    assert names_a_dialect('if dialect_name() == "postgresql":\n    pass\n')
    assert not names_a_dialect("x = 1\n")


# What billing offers the routes: its services (receiving a webhook is the webhooks' one), its
# named failures and the plans.
BILLING_FACES = ("app.billing.errors", "app.billing.plans", "app.billing.webhooks.receive")


def route_may_import(module: str) -> bool:
    if module.startswith("app.billing."):
        return module.rpartition(".")[2] == "service" or module in BILLING_FACES
    return not module.startswith(("app.db", "app.models", "app.extensions", "app.stripe"))


@pytest.mark.parametrize("route", sorted(m for m in import_graph() if m.startswith("app.api.")))
def test_routes_reach_billing_only_through_its_services(route: str) -> None:
    forbidden = sorted(m for m in import_graph()[route] if not route_may_import(m))
    assert forbidden == [], f"{route} imports {forbidden}"
