# The two commands (see README): `make demo` and `make test`. Each sets up .venv itself.
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_ARGS ?=

.PHONY: setup demo test lint bench

setup:
	@bash scripts/setup_env.sh

demo: setup
	$(PY) -m pyg_wsss.demo $(DEMO_ARGS)

test: setup
	$(PY) -m pytest -q -p no:cacheprovider

lint: setup
	$(VENV)/bin/ruff check pyg_wsss tests examples benchmarks scripts

bench: setup
	$(PY) benchmarks/graphs.py
