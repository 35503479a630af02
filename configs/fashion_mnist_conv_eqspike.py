r"""Convolutional EqSpike on Fashion-MNIST: configs/mnist_conv_eqspike.py's network, rule and
schedule (5x5 convolutions 1-32-64 with 2x2 average pooling, dense 1024-10, state pairing), with
graded input and a 120-step free phase (MNIST conv: spike trains, 40 steps).

The target of issue 10 is 91.5 %, above the best published spiking EP (91.11 %).

Command (full run; 2.5-3 hours on 2 idle cores at 33-40 samples/s, checkpointed every 200
steps):

  python -m launch.train --config configs/fashion_mnist_conv_eqspike.py \
      --workdir runs/fashion_mnist_conv_eqspike

Measured: 87.61 % test after 6 epochs (seed 0; 82.59 % after epoch 1; 3.7 hours with the machine
partly shared): results/fashion_mnist_conv_eqspike_seed0.json (run as
``--config.eqspike.input_mode=current --config.t_free=120`` before they became the default).
Seeds 1 and 2 of the default: 87.55 / 87.33 % (results/seeds/fashion_mnist_conv_eqspike_seed1.json,
_seed2.json); three seeds 87.50 +- 0.15 %. Still below the dense configs/fashion_mnist_eqspike.py
(87.85 +- 0.11 %) and the 91.5 % target. MNIST
conv's settings (``--config.eqspike.input_mode=spikes --config.t_free=40``) reached 79.39 %:
results/variants/fashion_mnist_conv_eqspike_spikes_tfree40_seed0.json.

Speed by nudged-phase length, idle (results/bench_fashion_mnist_conv_eqspike_t_nudge*.json):
30.2 / 43.6 / 49.8 samples/s at T_nudge 30 / 20 / 15; only 15 brings 6 epochs near 2 hours.
Its accuracy cost is measured only on a short run (71.15 against 72.55 %, inside the seed
spread: the README's Fashion sweep).

Quick variant (a subset; tests and CI): ``--config configs/fashion_mnist_conv_eqspike.py:quick``.
"""

import os

from eqspike_jax import config_lib

_MNIST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mnist_conv_eqspike.py")


def get_config(variant: str = ""):
  config = config_lib.from_file(_MNIST, variant)
  config.name = "fashion_mnist_conv_eqspike"
  config.dataset = "fashion_mnist"
  # Fashion images carry twice MNIST's ink, and 40 steps left the free phase far from settled
  # (residual 0.18-0.25): a 120-step free phase with graded input gained 7-8 points in every
  # epoch measured, at 0.75 of the speed (the README's Fashion sweep).
  config.eqspike.input_mode = "current"
  config.t_free = 120
  return config
