r"""Surrogate-gradient BPTT on the convolutional EqSpike network, Fashion-MNIST: the baseline.

configs/fashion_mnist_conv_eqspike.py's network (5x5 convolutions 1-32-64 with 2x2 average
pooling, dense 1024-10, the same spiking neurons, state readout), data and optimisation, at
MNIST conv's spike-train input and 40-step free phase (where the EqSpike config stood when this
baseline was measured), trained by jax.grad through the free phase with configs/mnist_bptt.py's
fast-sigmoid surrogate. It asks whether this network and free phase can fit Fashion-MNIST at
all when the gradient is exact, which tells the EP estimate's error apart from the network's
capacity and settling. Non-local: see eqspike_jax/models/bptt.py.

Command (full run):

  python -m launch.train --config configs/fashion_mnist_conv_bptt.py \
      --workdir runs/fashion_mnist_conv_bptt

Measured (short run only): 74.00 % test after one epoch on the first 10,000 training images,
tested on the first 2,000 (seed 0; 10 samples/s, 16 minutes):
results/variants/fashion_mnist_conv_bptt_sweep.json. Not trained in full.

Quick variant (a subset; tests and CI): ``--config configs/fashion_mnist_conv_bptt.py:quick``.
"""

import os

from eqspike_jax import config_lib

_HERE = os.path.dirname(os.path.abspath(__file__))
# The fields that make the conv network, its data and its schedule (the rest is BPTT's own).
_SHARED_FIELDS = ("dataset", "input_shape", "conv_layers", "layer_sizes", "learning_rates",
                  "num_epochs", "checkpoint_every_steps", "train_subset", "eval_subset")


def get_config(variant: str = ""):
  config = config_lib.from_file(os.path.join(_HERE, "mnist_bptt.py"), variant)
  conv = config_lib.from_file(os.path.join(_HERE, "fashion_mnist_conv_eqspike.py"), variant)
  for field in _SHARED_FIELDS:
    config[field] = conv[field]
  # The setting measured (spike-train input from mnist_bptt.py, 40 steps), not the EqSpike
  # default's 120 graded steps: BPTT's cost grows with the steps it differentiates through
  # (10 samples/s at 40 here: 10 hours for 6 epochs; about 30 at 120).
  config.t_free = 40
  config.name = "fashion_mnist_conv_bptt"
  return config
