# Two commands a newcomer needs (see README): `make run` and `make test`.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
UV := python3 -m uv

.PHONY: run test test-postgres lint bootstrap browser

bootstrap:
	@python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet --disable-pip-version-check uv
	@$(UV) sync --frozen --quiet

## Run the whole board on embedded defaults: Valkey, the simulator, web, worker and beat.
run: bootstrap
	$(UV) run python manage.py run

## Run linters, the type checker and the whole test suite.
test: bootstrap browser
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy
	$(UV) run pytest

## The tests that use the database again, on a throwaway PostgreSQL server (.ci/postgres,
## from Debian's postgresql package). `DATABASE_URL=postgres://... make test` runs the whole
## suite on a server of your own instead (the user must be allowed to create databases).
test-postgres: bootstrap browser
	@url=$$(bash .ci/postgres start) && trap 'bash .ci/postgres stop' EXIT && \
	  DATABASE_URL=$$url $(UV) run pytest --database-tests-only

lint: bootstrap
	$(UV) run ruff check --fix .
	$(UV) run ruff format .

# Browser tests drive Debian's Chromium, the compose file is checked with Debian's
# docker-compose, the alert rules with promtool (Debian's prometheus) and the docs' shell
# function with curl; install them when we can (as root) and they are missing.
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/docker-compose ] || [ ! -x /usr/bin/promtool ] || [ ! -x /usr/bin/curl ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium docker-compose prometheus curl >/dev/null; \
	  else echo "The tests need Debian's chromium, docker-compose, prometheus and curl: sudo apt-get install chromium docker-compose prometheus curl"; exit 1; fi; \
	fi
