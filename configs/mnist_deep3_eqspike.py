r"""Deep dense EqSpike on MNIST with three hidden layers, 784-512-512-512-10.

configs/mnist_deep_eqspike.py with one more hidden layer and a nudged phase of 80 steps: the
nudge reaching the first layer is weaker one layer further down, and the state pairing's noise
falls as 1 / T_nudge, so the phase length grows with depth. First-layer cosine with the
noise-free twin, random networks, batch 1024 of MNIST test images: 0.63-0.72 at T_nudge 30 (seeds
0-4), 0.90-0.95 at 60 (seeds 0-3), 0.943-0.975 at 80 (seeds 0-2).

Command (full run):

  python -m launch.train --config configs/mnist_deep3_eqspike.py --workdir runs/mnist_deep3_eqspike

Expected: not yet trained in full (a run is about 2.5 times the cost of mnist_deep_eqspike).

Quick variant (seconds; tests and CI): ``--config configs/mnist_deep3_eqspike.py:quick``.
"""

import os

from eqspike_jax import config_lib

_DEEP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mnist_deep_eqspike.py")


def get_config(variant: str = ""):
  config = config_lib.from_file(_DEEP, variant)
  config.name = "mnist_deep3_eqspike"
  config.layer_sizes = (784, 512, 512, 512, 10)
  config.learning_rates = (5e-4,) * 4
  config.t_nudge = 80
  return config
