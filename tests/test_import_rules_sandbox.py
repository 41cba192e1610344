"""The product and its stand-ins are separate: nothing under app/ imports the Stripe or GitHub
sandboxes (sandboxes/, their own package), the product starts in production with them not
installed, and the production image's build context and Dockerfile leave them (and the tests,
benchmarks and clients) out. `make run` composes the two from outside (bin/dev-stack)."""

from __future__ import annotations

import ast
import fnmatch
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAND_INS = ("stripe_sandbox", "github_sandbox")
DEV_ONLY = ("sandboxes", "tests", "bench", "clients")


def _imported_modules(tree: ast.AST) -> list[str]:
    """Every module a file imports: import statements, and importlib.import_module("...") or
    __import__("...") with a literal name."""
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
        elif isinstance(node, ast.Call) and node.args:
            name = node.func.attr if isinstance(node.func, ast.Attribute) else None
            name = node.func.id if isinstance(node.func, ast.Name) else name
            first = node.args[0]
            if name in ("import_module", "__import__") and isinstance(first, ast.Constant):
                found.append(str(first.value))
    return found


def _stand_in_imports(*places: Path) -> list[str]:
    offences = []
    files = [p for place in places for p in ([place] if place.is_file() else place.rglob("*.py"))]
    for path in sorted(files):
        tree = ast.parse(path.read_text(), filename=str(path))
        for module in _imported_modules(tree):
            if module.split(".")[0] in STAND_INS:
                offences.append(f"{path.relative_to(ROOT)} imports {module}")
    return offences


def test_nothing_under_app_imports_a_stand_in() -> None:
    product = [ROOT / "app", ROOT / "migrations", ROOT / "wsgi.py", ROOT / "gunicorn.conf.py"]
    assert all(place.exists() for place in product)
    assert _stand_in_imports(*product) == []


def test_the_rule_sees_every_way_of_importing(tmp_path: Path) -> None:
    """The checker itself catches each form (else the rule above could pass vacuously)."""
    forms = [
        "import stripe_sandbox",
        "import github_sandbox.server as s",
        "from stripe_sandbox.cli import main",
        "from github_sandbox import DEV_CLIENT_ID",
        "importlib.import_module('stripe_sandbox')",
        "__import__('github_sandbox')",
    ]
    for number, form in enumerate(forms):
        (tmp_path / f"m{number}.py").write_text(f"def f():\n    {form}\n")
    tree_of = {p.name: ast.parse(p.read_text()) for p in tmp_path.glob("*.py")}
    caught = [
        n
        for n, t in tree_of.items()
        if any(m.split(".")[0] in STAND_INS for m in _imported_modules(t))
    ]
    assert len(caught) == len(forms)
    assert _imported_modules(ast.parse("from .stripe_sandbox import x")) == []  # relative: ours


def test_the_product_starts_in_production_without_the_stand_ins_installed() -> None:
    """As in the image: importing either stand-in fails, and the app still builds and serves."""
    script = """
import sys
for name in ("stripe_sandbox", "github_sandbox"):
    sys.modules[name] = None  # any import of it raises ImportError
from app import create_app
app = create_app({
    "APP_ENV": "production",
    "DATABASE_URL": "postgresql://billing@127.0.0.1:9/billing",
    "AUTH_JWT_SECRET": "s" * 48,
    "STRIPE_SECRET_KEY": "sk_live_abc",
    "STRIPE_WEBHOOK_SECRET": "whsec_abc",
    "STRIPE_PRICE_ID_MONTHLY": "price_1",
    "METRICS_TOKEN": "m" * 24,
})
print(app.test_client().get("/healthz").status_code)
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "200"


def _excluded(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rules as this file uses them: last match wins, `!` re-includes,
    and a pattern naming a folder excludes everything under it."""
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        rule = pattern.lstrip("!").rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(prefix, rule) for prefix in prefixes):
            excluded = not negated
    return excluded


def _build_context() -> list[str]:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return [path for path in tracked if not _excluded(path, patterns)]


def test_the_production_image_leaves_the_stand_ins_out() -> None:
    context = _build_context()
    assert "app/__init__.py" in context and "wsgi.py" in context and "bin/start" in context
    leaked = [path for path in context if path.split("/")[0] in DEV_ONLY]
    assert leaked == [], f"in the image's build context: {leaked[:5]}"
    assert "bin/dev-stack" not in context  # the development launcher composes the stand-ins
    copied = [
        line.split()[1:-1]
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ") and "--from=" not in line
    ]
    sources = [source for sources in copied for source in sources]
    assert "app" in sources
    for source in sources:
        assert source.split("/")[0] not in (*DEV_ONLY, *STAND_INS), f"COPY {source}"
    # The runtime requirements never pull them in; the development ones do, as their package.
    runtime = (ROOT / "requirements.txt").read_text().splitlines()
    assert not [line for line in runtime if "sandbox" in line and not line.startswith("#")]
    assert "-e ./sandboxes" in (ROOT / "requirements-dev.txt").read_text().splitlines()
