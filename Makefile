# One command each, from a fresh clone: `make run` serves the API on :3001 with SQLite, the
# Stripe sandbox and the GitHub sign-in stand-in (bin/dev-stack starts the stand-ins from
# sandboxes/, a package the API never imports, and seeds Stripe's with the app's own setup
# commands; docs/sandbox.md); `make test` installs everything and runs the suite.
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
FLASK   := $(VENV)/bin/flask --app wsgi
STAMP   := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt sandboxes/pyproject.toml | cksum | cut -d' ' -f1)
PORT    ?= 3001
PG_URL  ?= postgresql://postgres@127.0.0.1:5432/test

TS      := clients/typescript
TS_STAMP = $(TS)/node_modules/.installed-$(shell cksum < $(TS)/package-lock.json | cut -d' ' -f1)

.PHONY: install migrate run test test-fast test-postgres test-all lint format audit sandbox github-sandbox bench bench-ack bench-blackhole bench-faults clean \
        ts-install openapi ts-drift test-ts test-browser bench-plans test-stripe-mock bench-peer

$(STAMP): requirements.txt requirements-dev.txt sandboxes/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

migrate: install
	$(FLASK) db upgrade

run: migrate
	@TOKEN=$$($(FLASK) auth token dev-user --email dev@example.com) && \
	echo "" && echo "Dev token for user 'dev-user':" && echo "  $$TOKEN" && \
	echo "Demo billing page: http://127.0.0.1:$(PORT)/demo (Sign in with GitHub: the local stand-in)" && \
	echo "API docs: http://127.0.0.1:$(PORT)/api/docs" && \
	echo "Try:" && \
	echo "  curl -s -H 'Authorization: Bearer $$TOKEN' http://127.0.0.1:$(PORT)/api/me" && \
	echo "  curl -s -X POST -H 'Authorization: Bearer $$TOKEN' -H 'Content-Type: application/json' \\" && \
	echo "       -d '{\"plan\":\"monthly\"}' http://127.0.0.1:$(PORT)/api/create-checkout-session" && \
	echo ""
	PORT=$(PORT) $(PY) bin/dev-stack -- $(FLASK) run --port $(PORT) --no-reload

# SQLite by default; TEST_DATABASE_URL=postgresql://... runs the same suite on PostgreSQL.
test: install
	$(VENV)/bin/pytest -q

# The inner loop, on SQLite, in TEST_WORKERS processes (pytest-xdist; each has its own
# database, sandbox and ports): leaves out the tests marked `slow` (property-based, concurrency,
# fault injection, real gunicorn/processes: `make test` runs them) and `browser` (Chromium:
# `make test-browser`). `-m` replaces pyproject's `not browser`, so both are named here.
# ~950 tests in 57-69 s wall on the shared 2-core machine at load averages 4-6, 128-135 s at
# load 9 (serial: 98 s at load 6-9, 191 s before the 0.05 s server shutdown poll);
# docs/development.md has the table.
TEST_WORKERS ?= 2
test-fast: install
	$(VENV)/bin/pytest -q -n $(TEST_WORKERS) -m "not slow and not browser"

# The app's Stripe calls against stripe-mock (tests/stripe_mock_server.py starts the build in
# STRIPE_MOCK_DIR, default ../shared/tools/stripe-mock, or uses STRIPE_MOCK_URL). `make test`
# runs them too when it is there; STRIPE_MOCK_REQUIRED=1 makes its absence a failure.
test-stripe-mock: install
	$(VENV)/bin/pytest -q -m stripe_mock

test-postgres: install
	TEST_DATABASE_URL=$(PG_URL) $(VENV)/bin/pytest -q

test-all: test test-postgres

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy app sandboxes/stripe_sandbox sandboxes/github_sandbox wsgi.py bench
	$(VENV)/bin/hadolint Dockerfile sandboxes/Dockerfile
	$(VENV)/bin/bandit -q -r app

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Needs PyPI's vulnerability service (not reachable from every machine).
audit: install
	$(PY) -m pip install -q pip-audit
	$(VENV)/bin/pip-audit -r requirements.txt

# The stand-ins alone (sandboxes/); `make run` starts and seeds them for you.
sandbox: install
	$(PY) -m stripe_sandbox --port 12111

github-sandbox: install
	$(PY) -m github_sandbox --port 12120

# The benchmark (bench/harness.py, about 10 minutes; BENCH_QUICK=1 for a smoke run): the app
# under gunicorn with the production config vs a bare baseline, wrk as the load. Needs the local
# PostgreSQL (BENCH_PG_URL, an admin URL) where it re-creates the databases bench_app, bench_bare
# and bench_sync (BENCH_DB_PREFIX). Writes bench/results/latest.{md,json,png}.
BENCH_STAMP := $(VENV)/.bench-$(shell cat requirements.txt requirements-bench.txt | cksum | cut -d' ' -f1)
$(BENCH_STAMP): requirements.txt requirements-bench.txt | $(STAMP)
	$(PY) -m pip install -q -r requirements-bench.txt
	touch $(BENCH_STAMP)

bench: install $(BENCH_STAMP)
	@command -v wrk >/dev/null || (apt-get install -y wrk || (apt-get update && apt-get install -y wrk))
	$(PY) bench/harness.py

# Webhook acknowledgement latency and Stripe calls per event, serial, in-process (SQLite;
# BENCH_DATABASE_URL for PostgreSQL, whose schema it drops and re-creates: use a scratch database).
bench-ack: install
	$(PY) bench/webhook_ack.py

# Stripe black-holed for 30 s under load: health, reads and webhooks vs checkout (SQLite).
bench-blackhole: install
	$(PY) bench/stripe_blackhole.py

# Issue 18's faults, one at a time, against gunicorn with production settings (PostgreSQL at
# BENCH_FAULTS_DATABASE_URL, wiped; Redis): slow and black-holed Stripe, hung Redis, frozen
# database. Prints /api/me p50/p99, checkout outcomes and /readyz times per fault. BENCH_QUICK=1
# for about a minute. Not in CI.
bench-faults: install
	$(PY) bench/faults.py

# GET /api/plans cached vs a Stripe read per request, alternating rounds (medians, ratio).
bench-plans: install
	$(PY) bench/plans_cache.py

# The TypeScript client (clients/typescript): npm ci from the committed lock file.
$(TS_STAMP): $(TS)/package-lock.json
	cd $(TS) && npm ci --no-audit --no-fund
	touch $(TS_STAMP)

ts-install: $(TS_STAMP)

# Regenerate the OpenAPI document from the routes and the TypeScript types from it; commit both.
openapi: install ts-install
	APP_ENV=testing PLANS_FILE= $(FLASK) openapi -o $(TS)/openapi.json
	cd $(TS) && npm run generate

# Drift: the committed document must be the routes' (also in `make test`), and the committed
# types must be what that document generates.
ts-drift: install ts-install
	APP_ENV=testing PLANS_FILE= $(FLASK) openapi | diff -q - $(TS)/openapi.json \
	  || (echo "openapi.json is out of date: run make openapi" && exit 1)
	cd $(TS) && npm run check:drift

# The client's node test against a live stack (gunicorn + the sandbox process).
test-ts: install ts-install
	$(PY) tests/live_stack.py -- npm --prefix $(TS) test

# The five purchase journeys in headless Chromium (/usr/bin/chromium); screenshots in
# tests/browser/screenshots/.
test-browser: install
	timeout 600 $(VENV)/bin/pytest -q -m browser tests/browser

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache instance $(TS)/node_modules $(TS)/dist

# Webhook ingest vs the guide's Express peer (BENCH_PEER_DIR, default ../shared/peers/express-guide)
# and a bare Flask HMAC-only route, alternating rounds, medians, ratios; then ours at a sustained
# 1,000 events/s (apply lag, backlog, RSS). Re-creates BENCH_PEER_DB (default bench_peer) on the
# local PostgreSQL (BENCH_PG_URL). BENCH_QUICK=1: under two minutes. docs/performance.md.
bench-peer: install
	@command -v wrk >/dev/null || (apt-get install -y wrk || (apt-get update && apt-get install -y wrk))
	$(PY) bench/peer.py
