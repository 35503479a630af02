# Two commands do all the set-up on a fresh machine: `make train` and `make test`.
# Both create .venv when missing and install the package with its extras.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CONFIG ?= configs/mnist_eqspike.py
WORKDIR ?= runs/$(basename $(notdir $(CONFIG)))
# The prepared TFDS directory beside the checkout, unless the caller points elsewhere.
export TFDS_DATA_DIR ?= $(abspath ../shared/tensorflow_datasets)

.PHONY: install train test test-fast bench figures clean

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,notebooks]'
	touch $@

install: $(VENV)/.installed

train: install
	$(PY) -m launch.train --config $(CONFIG) --workdir $(WORKDIR)

test: install
	$(PY) -m pytest -n 2 --durations=15 tests

# The tests not marked slow (under 2 minutes on 2 cores).
test-fast: install
	$(PY) -m pytest -n 2 -m "not slow" tests

bench: install
	$(PY) -m benchmarks.throughput --config $(CONFIG)

# Reruns every notebook at full settings and rewrites colabs/figures/ (about 1.5 minutes); the
# rasters, energy and STDP notebooks read the trained network of `make train` (runs/mnist_eqspike).
figures: install
	$(PY) -m colabs.runner colabs/*.py

clean:
	rm -rf $(VENV) runs *.egg-info
