# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
APT_PACKAGES := logrotate prometheus prometheus-alertmanager
# Debian names the Alertmanager binary prometheus-alertmanager.
SYSTEM_TOOLS := logrotate promtool prometheus prometheus-alertmanager amtool

.PHONY: demo test lint typecheck unit bench bench-quick system-tools clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/runtime-logging demo --log-dir logs

system-tools:
	@missing=""; for tool in $(SYSTEM_TOOLS); do \
	  PATH="$$PATH:/usr/sbin:/sbin" command -v $$tool >/dev/null 2>&1 || missing="$$missing $$tool"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing the system tools the tests use:$$missing"; \
	  guard=""; if [ ! -e /usr/sbin/policy-rc.d ]; then \
	    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; \
	    chmod 755 /usr/sbin/policy-rc.d; guard=1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends $(APT_PACKAGES) >/dev/null; \
	  status=$$?; [ -z "$$guard" ] || rm -f /usr/sbin/policy-rc.d; exit $$status; \
	fi

lint: $(VENV)/.dev
	$(BIN)/ruff check runtime_logging tests examples benchmarks
	$(BIN)/ruff format --check runtime_logging tests examples benchmarks

typecheck: $(VENV)/.dev
	$(BIN)/mypy

unit: $(VENV)/.dev system-tools
	PATH="$$PATH:/usr/sbin:/sbin" $(BIN)/python -m pytest -n 2 \
	  --cov --cov-branch --cov-report=term --cov-fail-under=85

test: lint typecheck unit bench-quick

bench: $(VENV)/.dev
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/breakdown.py

bench-quick: $(VENV)/.dev
	$(BIN)/python benchmarks/run.py --quick
	$(BIN)/python benchmarks/breakdown.py --calls 200 --rounds 1

clean:
	rm -rf $(VENV) logs .coverage
