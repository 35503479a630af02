# Two commands do all the set-up on a fresh machine: `make train` and `make test`.
# Both create .venv when missing and install the package with its extras.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CONFIG ?= configs/mnist_eqspike.py
WORKDIR ?= runs/$(basename $(notdir $(CONFIG)))
# The prepared TFDS directory beside the checkout, unless the caller points elsewhere.
export TFDS_DATA_DIR ?= $(abspath ../shared/tensorflow_datasets)

.PHONY: install train test bench clean

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

bench: install
	$(PY) -m benchmarks.throughput --config $(CONFIG)

clean:
	rm -rf $(VENV) runs *.egg-info
