# wardstream: `make demo` runs the whole system, `make test` the whole suite.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck unit install system-deps clean bench

$(PY):
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Debian packages pip cannot install (PostGIS, Chromium): installed as root,
# otherwise the exact command to run is printed and `make test` stops here.
system-deps:
	sh scripts/install-system-deps.sh

demo: $(STAMP)
	@sh scripts/install-system-deps.sh --demo || echo "make demo: without a PostgreSQL server the dashboard is left out"
	$(VENV)/bin/wardstream demo

lint: $(STAMP)
	$(VENV)/bin/ruff check stream geofence devices alerts simulators tests bench

typecheck: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadgroup

test: system-deps lint typecheck unit

bench: $(STAMP)
	$(VENV)/bin/wardstream bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
