# Two commands: `make demo` and `make test`. Both set up what they need on a fresh machine.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
export PYTHONPATH := $(CURDIR)

.PHONY: demo test lint typecheck imports pytest setup system-deps openleadr-venv bench clean

demo: setup
	$(BIN)/vpp demo

test: setup system-deps openleadr-venv lint typecheck imports pytest

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

# openleadr's VTN (the OpenADR 2.0b tests' counterpart) runs in a venv of its own, so its
# pins never constrain ours (tests/openadr2b/vtn_process.py makes it too when missing).
OPENLEADR_VENV := .venv-openleadr

openleadr-venv: $(OPENLEADR_VENV)/.installed

$(OPENLEADR_VENV)/.installed:
	test -x $(OPENLEADR_VENV)/bin/python || $(PY) -m venv $(OPENLEADR_VENV)
	$(OPENLEADR_VENV)/bin/python -m pip install -q openleadr==0.5.36
	touch $@

# Mosquitto (the tests' broker), mbpoll (a non-Python Modbus client), Chromium (the status
# page's browser test) and promtool (package prometheus: checks /metrics) come from Debian.
system-deps:
	@if ! command -v mosquitto >/dev/null 2>&1 || ! command -v mbpoll >/dev/null 2>&1 \
		|| ! command -v chromium >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto mosquitto-clients mbpoll chromium prometheus >/dev/null; \
	fi

lint:
	$(BIN)/ruff check vpp devices optimiser simulators building tests bench
	$(BIN)/ruff format --check vpp devices optimiser simulators building tests bench

typecheck:
	$(BIN)/mypy vpp devices optimiser simulators building

imports:
	$(BIN)/lint-imports

pytest:
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=30 -n 2 --dist loadgroup

bench: setup
	$(BIN)/python bench/optimiser.py
	$(BIN)/python bench/poll.py

clean:
	rm -rf $(VENV) $(OPENLEADR_VENV) out .mypy_cache .ruff_cache
