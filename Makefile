# One-command setup: `make demo` and `make test` create .venv on first use and reuse it after.
# The install is re-run only when setup.py / setup.cfg change (stamp file).

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.hetero_infer-installed
EXTRAS ?= ros,dev,cluster

# DDS stays on this machine; a random domain keeps parallel runs apart (as ../shared/ros/localhost.env).
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST
export ROS_DOMAIN_ID ?= $(shell echo $$(( (RANDOM % 100) + 1 )))

.PHONY: all venv demo test lint compat pytest bench clean

all: test

venv: $(STAMP)

$(STAMP): setup.py setup.cfg
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade 'pip>=23' >/dev/null
	$(BIN)/python -m pip install -e '.[$(EXTRAS)]'
	@touch $@

demo: $(STAMP)
	$(BIN)/hetero-infer demo

lint: $(STAMP)
	$(BIN)/ruff check .

# Jetson AGX Xavier stays on JetPack 5 (Python 3.8): the package must parse and run there.
compat: $(STAMP)
	$(BIN)/vermin -q -t=3.8- --violations --no-tips --eval-annotations --backport typing \
		hetero_infer launch

pytest: $(STAMP)
	$(BIN)/python -m pytest -q test

test: lint compat pytest

bench: $(STAMP)
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf build install log .pytest_cache .ruff_cache *.egg-info
