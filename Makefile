# Two commands: `make demo` (train a canvas on studio-tiny, export it, open the app) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast venv browser clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch/torchvision pinned to the releases served from local disk here; a newer range works elsewhere.
	# TORCH_INDEX=https://download.pytorch.org/whl/cpu installs the CPU build where that index is reachable.
	$(PY) -m pip install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "torch==2.14.1" "torchvision==0.29.1"
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

# Headless Chromium for the web-app browser tests (Debian package; playwright drives it).
browser:
	@command -v chromium >/dev/null 2>&1 || { echo "make test: installing Debian's chromium with apt-get for the browser tests (skip them: make test-fast)"; \
		(apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "chromium not installed: browser tests will be skipped"; }

# Tests run in TEST_WORKERS processes (pytest-xdist), one test file per worker, each with one torch thread:
# on 2 cores, two workers of one thread take 10-13 min where one process took 21-22 (stop 38, AMD EPYC), and
# two threads per process beside a busy core (the browser tests' Chromium) spin in OpenMP (a study ran 4x slower).
TEST_WORKERS ?= 2
PYTEST := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

test: $(STAMP) browser
	$(PYTEST) --timeout=900 tests

test-fast: $(STAMP)
	$(PYTEST) -m "not slow and not browser" tests

# `make demo NO_APP=1` trains, exports and prints what to try next without opening the app.
demo: $(STAMP)
	$(PY) -m artstudio.demo $(if $(NO_APP),--no-app)

clean:
	rm -rf $(VENV) runs .pytest_cache
