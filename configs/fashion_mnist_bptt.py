r"""Surrogate-gradient BPTT on Fashion-MNIST: configs/mnist_bptt.py with only the data changed.

Command (full run):

  python -m launch.train --config configs/fashion_mnist_bptt.py --workdir runs/fashion_mnist_bptt

Expected: see results/fashion_mnist_bptt_seed0.json (filled in by the committed runs).

Quick variant (seconds; tests and CI): ``--config configs/fashion_mnist_bptt.py:quick``.
"""

import os

from eqspike_jax import config_lib

_MNIST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mnist_bptt.py")


def get_config(variant: str = ""):
  config = config_lib.from_file(_MNIST, variant)
  config.name = "fashion_mnist_bptt"
  config.dataset = "fashion_mnist"
  return config
