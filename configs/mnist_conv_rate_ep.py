r"""Rate-based convolutional EP on MNIST: the network of configs/mnist_conv_eqspike.py with every
spike replaced by its rate (the reference the spiking network is measured against).

5x5 convolutions 1-32-64, each with 2x2 average pooling, then dense 1024-10; feedback through
the exact transpose of the same kernels (layers.Conv); symmetric nudging (which convolutional EP
needs, Laborieux et al. 2021) at the spiking config's beta 0.5. On a fresh network this beta's
estimate is orthogonal to the true gradient (0.96-0.98 at beta 0.05:
results/alignment_conv_beta.json): both conv configs' beta is open.

Command (full run):

  python -m launch.train --config configs/mnist_conv_rate_ep.py --workdir runs/mnist_conv_rate_ep

Expected: not yet trained in full.

Quick variant (a subset; tests and CI): ``--config configs/mnist_conv_rate_ep.py:quick``.
"""

import os

from eqspike_jax import config_lib

_RATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mnist_rate_ep.py")
_CONV = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mnist_conv_eqspike.py")


def get_config(variant: str = ""):
  config = config_lib.from_file(_RATE, variant)
  spiking = config_lib.from_file(_CONV, variant)
  config.name = "mnist_conv_rate_ep"
  for field in ("input_shape", "conv_layers", "layer_sizes", "learning_rates", "t_free",
                "t_nudge", "beta", "nudging", "lr_schedule", "num_epochs", "train_subset",
                "eval_subset"):
    config[field] = spiking[field]
  config.t_nudge = 15
  return config
