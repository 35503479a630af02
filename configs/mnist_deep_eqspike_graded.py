r"""Deep dense EqSpike on MNIST with graded input, 784-512-512-10.

configs/mnist_deep_eqspike.py (two hidden layers, spike-state pairing, T 60 / 60) with the
pixels sent as current: one graded, delta-coded event per nonzero pixel when the image arrives
(events.py), instead of spike trains whose noise enters the first hidden layer at every step.
On one hidden layer that change alone raised the test accuracy from 98.16 to 98.42 %
(results/frontier.json). The hidden and output neurons still talk in binary spikes.

Command (full run):

  python -m launch.train --config configs/mnist_deep_eqspike_graded.py \
      --workdir runs/mnist_deep_eqspike_graded

Measured: 98.01 % test after 8 epochs (seed 0; results/mnist_deep_eqspike_graded_seed0.json),
up from 97.91 % with spike trains but below the 98.3 % target of issue 10. Seeds 1 and 2
(``--config.seed=N``): 97.75 / 97.86 % (results/seeds/); three seeds 97.87 +- 0.13 %, 35 minutes
a run on 2 idle cores.

Quick variant (seconds; tests and CI): ``--config configs/mnist_deep_eqspike_graded.py:quick``.
"""

import os

from eqspike_jax import config_lib

_DEEP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mnist_deep_eqspike.py")


def get_config(variant: str = ""):
  config = config_lib.from_file(_DEEP, variant)
  config.name = "mnist_deep_eqspike_graded"
  config.eqspike.input_mode = "current"
  return config
