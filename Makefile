# The two commands a new user needs are `make run` and `make test`; see README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
MANAGE := $(PY) manage.py
GUNICORN_PIDFILE ?= .local/gunicorn.pid

.PHONY: help deps browser promtool nginx pgbouncer services migrate run scale-demo test bench fuzz chaos lint format stop

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

deps: ## install what is missing: Debian packages (as root) and the virtualenv
	@deploy/bootstrap.sh system
	@deploy/bootstrap.sh python

browser: ## install Debian's chromium when missing (as root): the perf admin's browser test
	@deploy/bootstrap.sh browser

promtool: ## install Debian's prometheus package for promtool when missing (as root): the alert-rule tests
	@deploy/bootstrap.sh promtool

nginx: ## install Debian's nginx-light when missing (as root): several instances behind nginx
	@deploy/bootstrap.sh nginx

pgbouncer: ## install Debian's pgbouncer when missing (as root): part of the suite runs through it
	@deploy/bootstrap.sh pgbouncer

services: deps ## start the project-local PostgreSQL and Redis (unless DATABASE_URL / REDIS_URL are set)
	@deploy/services.sh start

migrate: services ## apply database migrations
	@$(MANAGE) migrate --noinput -v0

# collectstatic (whitenoise compresses every file: about 40 s) only when a static file or the
# installed packages changed; the stamp lives in STATIC_ROOT, so deleting it collects again.
STATIC_STAMP := .local/static/.collected
$(VENV)/.requirements.sha256: ;
$(STATIC_STAMP): $(VENV)/.requirements.sha256 $(wildcard */static/*/*)
	@$(MANAGE) collectstatic --noinput -v0
	@touch $@

run: migrate $(STATIC_STAMP) ## bootstrap, migrate, load the demo data and serve on http://127.0.0.1:8000
	@$(MANAGE) load_demo
	@$(MANAGE) warm_cache -v0
	@echo "Serving on http://$${BIND:-127.0.0.1:8000}  (docs: /api/docs, admin: /admin/, ready: /readyz). Ctrl-C stops; make stop stops the databases."
	@exec $(VENV)/bin/gunicorn -c deploy/gunicorn.conf.py bountyexpo.wsgi

scale-demo: migrate nginx $(STATIC_STAMP) ## two gunicorn instances (8001, 8002) behind nginx on http://127.0.0.1:8080
	@$(MANAGE) load_demo
	@exec deploy/scale_demo.sh

test: services browser promtool nginx pgbouncer lint ## bootstrap, lint, then the whole test suite against real PostgreSQL and Redis
	@$(VENV)/bin/pytest $(PYTEST_ARGS)

bench: services ## print read-path latency figures (test database, 50,000 bounties); not part of make test
	@$(VENV)/bin/pytest bench -q -s -p no:cacheprovider

fuzz: services ## schemathesis against a live server: coverage phase + FUZZ_EXAMPLES (100) examples per operation, ~4,400 requests
	@FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-100} $(VENV)/bin/pytest tests/fuzz -q -s -p no:cacheprovider

# The command only orchestrates a throwaway stack (each server it starts gets its own key), so a
# fresh clone without .local/env may run it.
chaos: deps ## faults under load on a throwaway PostgreSQL, Redis and gunicorn; report in reports/chaos/ (CHAOS_ARGS=--quick)
	@SECRET_KEY=$${SECRET_KEY:-chaos-orchestrator-serves-nothing} $(MANAGE) chaos $(CHAOS_ARGS)

lint: deps ## ruff check, ruff format --check, makemigrations --check
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@$(MANAGE) makemigrations --check --dry-run -v0

format: deps ## apply ruff's fixes and formatting
	@$(VENV)/bin/ruff check --fix .
	@$(VENV)/bin/ruff format .

stop: ## stop gunicorn (if started by make run) and the local PostgreSQL and Redis
	@if [ -f $(GUNICORN_PIDFILE) ] && kill -0 $$(cat $(GUNICORN_PIDFILE)) 2>/dev/null; then \
		kill -TERM $$(cat $(GUNICORN_PIDFILE)); echo "==> stopped gunicorn"; fi
	@deploy/services.sh stop
