# Two entry points for a fresh machine: `make smoke` (a CPU-sized search) and `make test` (the suite).
# Both create .venv on first use. CPU torch is pinned to the build this machine ships; GPU users see README.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
NBS := $(VENV)/bin/nbs
TORCH_SPEC ?= torch==2.13.0

.PHONY: venv smoke test browser bench-step clean-venv

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	# the NB201 reference code, for the parity tests and the step benchmark; --no-deps because its
	# declared requirements are not needed for the model files we use (an extra cannot say --no-deps)
	$(PY) -m pip install -q --no-deps xautodl==1.0.0
	touch $@

venv: $(VENV)/.installed

# A CPU-sized search on real CIFAR-10 (../shared/datasets); the benchmark table is built once from ../shared/nb201
# (the ../shared beside this checkout, found from the package, never from the working folder) into data/.
smoke: venv
	$(NBS) bench build --if-missing
	$(NBS) run --method single-darts --seeds 1 --preset smoke --out runs/

# Chromium renders the HTML report in its test; installed from Debian when we can (root), else that test skips.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
	  echo "chromium not installed: the browser test of the report will be skipped"; }

# in parallel, one worker per core (pytest-xdist); each test file in one worker, so that its module
# fixtures (real runs) are built once (loadgroup with computed groups would balance better, but it does not
# group under pytest 9.2: pytest-xdist#1386). PYTEST_WORKERS=0 runs serially, as does `pytest tests/test_x.py`.
PYTEST_WORKERS ?= auto
test: venv browser
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile

bench-step: venv
	$(PY) benchmarks/darts_step_vs_xautodl.py

clean-venv:
	rm -rf $(VENV)
