# The two commands (see README): `make demo` and `make test`. Each sets up .venv itself.
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_ARGS ?=

.PHONY: setup demo test lint typecheck wheel bench

setup:
	@bash scripts/setup_env.sh

demo: setup
	$(PY) -m pyg_wsss.demo $(DEMO_ARGS)

# the type check (seconds), the test suite, then the wheel built and used from a fresh venv
test: setup
	$(PY) -m mypy
	$(PY) -m pytest -q -p no:cacheprovider
	$(PY) scripts/check_wheel.py

typecheck: setup
	$(PY) -m mypy

wheel: setup
	$(PY) scripts/check_wheel.py

lint: setup
	$(VENV)/bin/ruff check pyg_wsss tests examples benchmarks scripts

bench: setup
	$(PY) benchmarks/graphs.py
