# xero-mirror: `make demo` runs the whole system on embedded defaults (its state kept in var/ until
# `make demo-reset`); `make test` runs the suite;
# `make check` runs the import contracts, ruff and mypy (pyproject.toml says which rules).
# One .venv: demo, bench and chaos need production's requirements.txt; test and check also
# requirements-dev.txt. A stamp per checksum reinstalls when either file changes.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip install --disable-pip-version-check -q
STAMP     := $(VENV)/.installed-run-$(shell cat requirements.txt | cksum | cut -d' ' -f1)
DEV_STAMP := $(VENV)/.installed-dev-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)

.PHONY: install install-dev test check demo demo-reset bench chaos clean

install: $(STAMP)

install-dev: $(DEV_STAMP)

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) -r requirements.txt
	rm -f $(VENV)/.installed-run-*
	touch $(STAMP)

$(DEV_STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) -r requirements-dev.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP) $(DEV_STAMP)

test: $(DEV_STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

check: $(DEV_STAMP)  # all three run; any finding fails
	@failed=0; \
	$(BIN)/lint-imports || failed=1; \
	$(BIN)/ruff check . || failed=1; \
	$(BIN)/mypy || failed=1; \
	exit $$failed

demo: $(STAMP)
	$(BIN)/python -m demo

demo-reset: $(STAMP)  # wipe the demo's state (var/demo*): the next `make demo` starts afresh
	$(BIN)/python -m demo --reset

bench: $(STAMP)
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -q wrk >/dev/null; } \
		|| echo "wrk is not installed: the intake benchmark will say it was skipped"
	$(BIN)/python -m bench $(BENCH_ARGS)

chaos: $(STAMP)
	$(BIN)/python -m bench.chaos $(CHAOS_ARGS)

clean:
	rm -rf $(VENV) var/*.db var/*.db-* .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
