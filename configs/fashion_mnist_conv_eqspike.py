r"""Convolutional EqSpike on Fashion-MNIST: configs/mnist_conv_eqspike.py's network, rule and
schedule (5x5 convolutions 1-32-64 with 2x2 average pooling, dense 1024-10, state pairing).

Only the data changes, so it measures the same settings on the harder set (the target of issue
10 is 91.5 %, above the best published spiking EP, 91.11 %).

Command (full run; about 2.3 hours on 2 idle cores at the 45 samples/s of
the MNIST run, checkpointed every 200 steps):

  python -m launch.train --config configs/fashion_mnist_conv_eqspike.py \
      --workdir runs/fashion_mnist_conv_eqspike

Measured: 79.39 % test after 6 epochs (seed 0; 72.2 % after epoch 1; 2.6 hours, 41 samples/s),
far below the dense configs/fashion_mnist_eqspike.py (87.85 %) and the 91.5 % target:
results/fashion_mnist_conv_eqspike_seed0.json.

Quick variant (a subset; tests and CI): ``--config configs/fashion_mnist_conv_eqspike.py:quick``.
"""

import os

from eqspike_jax import config_lib

_MNIST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mnist_conv_eqspike.py")


def get_config(variant: str = ""):
  config = config_lib.from_file(_MNIST, variant)
  config.name = "fashion_mnist_conv_eqspike"
  config.dataset = "fashion_mnist"
  return config
