r"""EqSpike on Fashion-MNIST, 784-512-10: configs/mnist_eqspike.py's network, rule and schedule.

Only the data changes, so the two rows of the README compare datasets, not settings.

Command (full run):

  python -m launch.train --config configs/fashion_mnist_eqspike.py --workdir runs/fashion_mnist_eqspike

Expected: see results/fashion_mnist_eqspike_seed0.json (filled in by the committed runs).

Quick variant (seconds; tests and CI): ``--config configs/fashion_mnist_eqspike.py:quick``.
"""

import os

from eqspike_jax import config_lib

_MNIST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mnist_eqspike.py")


def get_config(variant: str = ""):
  config = config_lib.from_file(_MNIST, variant)
  config.name = "fashion_mnist_eqspike"
  config.dataset = "fashion_mnist"
  return config
