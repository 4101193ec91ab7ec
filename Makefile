# Two entry points for a fresh machine: `make smoke` (a CPU-sized search) and `make test` (the suite).
# Both create .venv on first use. CPU torch is pinned to the build this machine ships; GPU users see README.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
SHARED ?= ../shared

.PHONY: venv smoke test bench clean-venv

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

venv: $(VENV)/.installed

smoke: venv
	$(VENV)/bin/nbs run --method single-darts --seeds 1 --preset smoke --out runs/

test: venv
	$(PY) -m pytest -q

clean-venv:
	rm -rf $(VENV)
