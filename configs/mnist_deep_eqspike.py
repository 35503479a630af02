r"""Deep dense EqSpike on MNIST, 784-512-512-10: two hidden layers, spike-state pairing.

The rule of configs/mnist_eqspike.py (a spike paired with the other neuron's state change, time
summed) loses the layers far from the output once there are two hidden layers: at batch 1024 its
per-layer cosine with the noise-free twin is 0.28 / 0.23 / 0.91 on a random network
(results/alignment.json). Pairing each spike with the other neuron's state (``pairing="state"``,
a time average whose sigma-delta noise falls as 1 / T) raises it to 0.90 / 0.95 / 0.99 (0.95 / 0.98 / 0.99 at
T_nudge 30, 0.98 / 0.97 / 0.98 at 60 on a partly trained network: the setting here), with
writes only where a neuron spikes, as before.

Command (full run):

  python -m launch.train --config configs/mnist_deep_eqspike.py --workdir runs/mnist_deep_eqspike

Measured: 97.91 % test after 8 epochs (seed 0; 72 minutes with the machine shared), below the
98.3 % target of issue 10 and the one-hidden-layer default: results/mnist_deep_eqspike_seed0.json.
At T_nudge 30 the same network reached results/variants/mnist_deep_eqspike_t_nudge30.json.

Quick variant (seconds; tests and CI): ``--config configs/mnist_deep_eqspike.py:quick``.
"""

import os

from eqspike_jax import config_lib

_MNIST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mnist_eqspike.py")


def get_config(variant: str = ""):
  config = config_lib.from_file(_MNIST, variant)
  config.name = "mnist_deep_eqspike"
  config.layer_sizes = (784, 512, 512, 10)
  config.learning_rates = (5e-4, 5e-4, 5e-4)
  config.eqspike.pairing = "state"
  # The average's noise falls as 1 / T_nudge. Cosine with the twin, batch 1024 of MNIST test
  # images, by layer: random 784-512-512-10 (seeds 0-4), first layer 0.878-0.901 at T_nudge
  # 20, 0.935-0.958 at 30; after 150 training steps (90.7 % test) 0.911 / 0.878 / 0.958 at 30
  # and 0.978 / 0.973 / 0.984 at 60. The error, and with it the nudge, shrinks as the network
  # learns while the spike noise does not, so the phase is long enough for a trained network.
  config.t_nudge = 60
  config.num_epochs = 8 if not variant else config.num_epochs
  return config
