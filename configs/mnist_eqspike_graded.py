r"""EqSpike on MNIST with graded input, 784-512-10: the frontier's low-energy point (issue 11).

configs/mnist_eqspike.py with two changes. The pixels are sent as current (one graded,
delta-coded event per nonzero pixel when the image arrives, as Loihi 2 and sigma-delta
networks send an input; events.py) instead of spike trains over every step, and the phases are
halved to 30 / 10 steps. The hidden and output neurons still talk in binary spikes and the rule
is still the spike-driven one.

Command (full run):

  python -m launch.train --config configs/mnist_eqspike_graded.py --workdir runs/mnist_eqspike_graded

Measured (results/frontier.json, results/frontier/): 98.29 +- 0.05 % test after 6 epochs over
seeds 0, 1, 2 (98.34, 98.29, 98.25), each in under 3 minutes on 2 cores (2,800 samples/s with
another run on the machine); 3.4 µJ per inference and 26 µJ per training example on Loihi's
constants, against 79 / 398 µJ for the default (python -m launch.energy --workdir ...).

Quick variant (seconds; tests and CI): ``--config configs/mnist_eqspike_graded.py:quick``.
"""

import os

from eqspike_jax import config_lib

_DEFAULT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mnist_eqspike.py")


def get_config(variant: str = ""):
  config = config_lib.from_file(_DEFAULT, variant)
  config.name = "mnist_eqspike_graded"
  config.eqspike.input_mode = "current"
  config.t_free = 30
  config.t_nudge = 10
  return config
