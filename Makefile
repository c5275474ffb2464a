# Two commands do everything on a fresh machine with Python 3.11: `make demo` and `make test`.
# Each creates .venv from the pinned files when it is missing or older than them.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
UV_VERSION := 0.13.9

.PHONY: demo airflow test test-unit lint bench lock clean

# The virtualenv and uv only: enough for `make lock`, which must work when the requirements no
# longer fit the old lock.
$(VENV)/bin/uv:
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run make PYTHON=/path/to/python3.11" >&2; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet "uv==$(UV_VERSION)"

$(VENV)/.installed: requirements.txt requirements-dev.txt constraints.txt | $(VENV)/bin/uv
	@# Bytecode up front (pip does this, uv does not): with PYTHONDONTWRITEBYTECODE set, as on some
	@# CI machines, every process would otherwise compile Airflow and pandas from source again.
	$(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(PY) -r requirements-dev.txt -c constraints.txt
	@touch $@

# Options are make variables, e.g. `make airflow PORT=8081 AUDIT_DIR=.demo/audit` or
# `make demo USERS=2000 SEED=7 DATE=2026-12-01`. `:=` so an unrelated PORT or USERS in the
# environment is not picked up silently; only the command line overrides these.
PORT := 8080
USERS := 300
SEED := 42
DATE :=
AUDIT_DIR :=
DATE_ARG = $(if $(DATE),--date $(DATE))

demo: $(VENV)/.installed
	$(PY) -m tools.demo --users $(USERS) --seed $(SEED) $(DATE_ARG)

# The Airflow UI on http://localhost:$(PORT) (admin/admin) with the DAGs, the sandbox and the SMTP
# sink; AUDIT_DIR shows an existing audit folder (the demo's: .demo/audit) on the audit page.
airflow: $(VENV)/.installed
	$(PY) -m tools.airflow_local --port $(PORT) --users $(USERS) --seed $(SEED) $(DATE_ARG) $(if $(AUDIT_DIR),--audit-dir $(AUDIT_DIR))

test: $(VENV)/.installed
	$(PY) -m pytest

test-unit: $(VENV)/.installed
	$(PY) -m pytest -m "not integration"

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	PYTHONPATH=plugins:include $(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

# `make bench` measures a 100,000-user org; `make bench SIZE=1m` then also runs the whole daily DAG in
# dry run over 1,000,000 users (docs/performance.md, "One million accounts").
SIZE := 100k
BENCH_ARGS_100k :=
BENCH_ARGS_1m := --full-run-users 1000000
ifneq ($(filter bench,$(MAKECMDGOALS)),)
  ifeq ($(filter 100k 1m,$(SIZE)),)
    $(error SIZE=$(SIZE) is not a bench size: use SIZE=100k (the default) or SIZE=1m)
  endif
endif
bench: $(VENV)/.installed
	$(PY) -m tools.bench $(BENCH_ARGS_$(SIZE))

lock: | $(VENV)/bin/uv
	$(VENV)/bin/uv pip compile requirements-dev.txt --python-version 3.11 --no-header --annotation-style line -o constraints.txt
	sed -i '1i # Lock for requirements.txt and requirements-dev.txt (regenerate with `make lock`).' constraints.txt

clean:
	rm -rf $(VENV) .demo .airflow-local .pytest_cache
