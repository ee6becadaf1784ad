# NEXUS memory. The two commands: `make run` (the whole stack) and `make test` (every test).
# Both install what they need first; nothing has to be set up by hand.

VENV    ?= .venv
PYTHON  ?= python3
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: setup system-deps run test lint unit pytest migrate bench freeze-migrations clean

setup: $(STAMP) system-deps

# redis-server and pgTAP from Debian; the postgres user when run as root (idempotent)
system-deps:
	@scripts/install-system-deps

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev,langgraph]'
	@touch $@

run: setup
	exec $(BIN)/nexus up

# lint, the unit layer (seconds: a failure there stops here), then every other test with the 15
# slowest shown, so that the next slow test shows itself
test: setup lint unit pytest

lint:
	$(BIN)/ruff check sidecar nexus tests bench conftest.py

# tests/unit alone: no PostgreSQL, Redis or model, in seconds
unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

pytest:
	$(BIN)/pytest --durations=15 --ignore=tests/unit

migrate: setup
	$(BIN)/nexus migrate

# Benchmarks on a throw-away stack: a table, and bench/results/latest.json (make bench ONLY=queue.insert)
bench: setup
	$(BIN)/python -m bench.run $(if $(ONLY),--only $(ONLY))

# Record the hashes of landed migrations (a landed file never changes; tests check this list).
freeze-migrations:
	cd migrations && sha256sum [0-9]*.sql > SHA256SUMS

clean:
	-$(BIN)/nexus down
	rm -rf $(VENV) .cache
