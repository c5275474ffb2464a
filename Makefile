# Two commands do everything on a fresh machine with Python 3.11: `make demo` and `make test`.
# Each creates .venv from the pinned files when it is missing or older than them.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
UV_VERSION := 0.13.9

.PHONY: demo airflow test test-unit lint bench lock clean

$(VENV)/.installed: requirements.txt requirements-dev.txt constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run make PYTHON=/path/to/python3.11" >&2; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet "uv==$(UV_VERSION)"
	@# Bytecode up front (pip does this, uv does not): with PYTHONDONTWRITEBYTECODE set, as on some
	@# CI machines, every process would otherwise compile Airflow and pandas from source again.
	$(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(PY) -r requirements-dev.txt -c constraints.txt
	@touch $@

demo: $(VENV)/.installed
	$(PY) -m tools.demo

# The Airflow UI on http://localhost:8080 (admin/admin) with the DAGs, the sandbox and the SMTP sink.
airflow: $(VENV)/.installed
	$(PY) -m tools.airflow_local

test: $(VENV)/.installed
	$(PY) -m pytest

test-unit: $(VENV)/.installed
	$(PY) -m pytest -m "not integration"

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: $(VENV)/.installed
	$(PY) -m tools.bench

lock: $(VENV)/.installed
	$(VENV)/bin/uv pip compile requirements-dev.txt --python-version 3.11 --no-header --annotation-style line -o constraints.txt
	sed -i '1i # Lock for requirements.txt and requirements-dev.txt (regenerate with `make lock`).' constraints.txt

clean:
	rm -rf $(VENV) .demo .airflow-local .pytest_cache
