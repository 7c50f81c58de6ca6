# ITB Clinic — `make` lists the targets.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
PORT ?= 8000
PYTEST_ARGS ?=
# Two test processes on the 2-core machine. The browser and real-worker tests share one of them
# (one xdist group, see tests/conftest.py): never two at once, never one purging the other's broker.
XDIST := -n 2 --dist loadgroup

.DEFAULT_GOAL := help
.PHONY: help run test test-fast coverage typecheck lint format check migrate seed bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(STAMP): requirements.txt | $(PY)
	$(PIP) install --quiet -r requirements.txt
	touch $@

$(DEV_STAMP): requirements.txt requirements-dev.txt | $(PY)
	$(PIP) install --quiet -r requirements-dev.txt
	touch $(STAMP) $@

# The local demo runs with DEBUG on (plain HTTP, static files from runserver); seed_demo needs it.
run seed: export DJANGO_DEBUG ?= true
# Links in emails, portal invitations and calendar feeds point at the port the demo listens on
# (settings.SITE_URL), unless SITE_URL is given.
run: export SITE_URL ?= http://127.0.0.1:$(PORT)

run: $(STAMP) ## Run the whole app (web, worker, beat) on SQLite + filesystem broker, with demo data
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	@echo ""
	@echo "  ITB Clinic: http://127.0.0.1:$(PORT)/   (Ctrl-C stops the web server, the worker and beat)"
	@echo "  Links in emails, invitations and calendar feeds: $(SITE_URL)"
	@echo ""
	$(VENV)/bin/honcho start --port $(PORT)

test: $(DEV_STAMP) ## Run the whole test suite, two processes (SQLite by default; DATABASE_URL/CELERY_BROKER_URL to change)
	$(PY) -m pytest $(XDIST) $(PYTEST_ARGS)

test-fast: $(DEV_STAMP) ## The suite without browser, real-worker and simulation tests (about 4 minutes on 2 cores)
	$(PY) -m pytest $(XDIST) -m "not e2e and not worker and not slow" $(PYTEST_ARGS)

coverage: $(DEV_STAMP) ## The whole suite with a line-coverage report in the terminal
	$(PY) -m pytest $(XDIST) --cov --cov-report=term-missing:skip-covered $(PYTEST_ARGS)

typecheck: $(DEV_STAMP) ## mypy with django-stubs (strict for the clinical rules; see pyproject.toml)
	$(PY) -m mypy

lint: $(DEV_STAMP) ## ruff check + format check, import contract, mypy, template lint, bandit, pip-audit
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports
	$(PY) -m mypy
	$(VENV)/bin/djlint --lint itbclinic patients pumps refills portal audit interop demo
	$(VENV)/bin/bandit -q -r core itbclinic patients pumps refills audit portal interop demo -x '*/migrations/*' --severity-level high
	$(PY) .ci/pip_audit.py

format: $(DEV_STAMP) ## Format the code with ruff
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

migrate: $(STAMP) ## Apply database migrations
	$(PY) manage.py migrate --noinput

seed: $(STAMP) ## Load the demo clinic (idempotent)
	$(PY) manage.py seed_demo

BENCH_SIZES ?= 1000 10000 100000

bench: $(DEV_STAMP) ## Benchmarks: pages, API and scans at 1k/10k/100k pumps (DATABASE_URL on PostgreSQL; BENCH_SIZES to choose)
	$(PY) benchmarks/pages.py --implants $(BENCH_SIZES)
	for n in $(BENCH_SIZES); do $(PY) benchmarks/reminder_scan.py --implants $$n || exit 1; done
	$(PY) benchmarks/clinic_import.py --rows 5000

clean: ## Remove the virtualenv and local data (var/)
	rm -rf $(VENV) var staticfiles
