r"""Surrogate-gradient BPTT on the EqSpike network, MNIST 784-512-10: the baseline to compare with.

configs/mnist_eqspike.py's network, data and optimisation (gamma 0.2, sigma-delta spikes,
spiking input, symmetric weights, state readout after a 60-step free phase, Adam 5e-4 with
cosine decay, batch 50, 6 epochs), trained by jax.grad through the free phase with a
fast-sigmoid surrogate for the spike. Non-local: see eqspike_jax/models/bptt.py.

Command (full run):

  python -m launch.train --config configs/mnist_bptt.py --workdir runs/mnist_bptt

Expected: 98.25 +- 0.05 % test accuracy after 6 epochs over seeds 0-2 (98.31, 98.22, 98.22),
about 7.5 minutes on a 2-core CPU at 810-875 training samples/s (results/mnist_bptt_seed0.json,
results/seeds/).

Quick variant (seconds; tests and CI): ``--config configs/mnist_bptt.py:quick``.
"""

import os

from eqspike_jax import config_lib

_EQSPIKE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mnist_eqspike.py")
# The fields of config.eqspike that describe the network (the rest belong to the EP rule).
_NETWORK_FIELDS = ("gamma", "spike_mode", "input_mode", "readout", "readout_steps")
# EP's own shared fields: BPTT ignores them, so they keep their defaults.
_EP_FIELDS = ("beta", "nudging", "t_nudge", "update_mode")


def get_config(variant: str = ""):
  eqspike = config_lib.from_file(_EQSPIKE, variant)
  config = config_lib.base_config("bptt")
  shared = {k: v for k, v in eqspike.items()
            if k not in ("model", "eqspike", "bptt") + _EP_FIELDS}
  config.update(shared)
  config.name = "mnist_bptt"
  for field in _NETWORK_FIELDS:
    config.bptt[field] = eqspike.eqspike[field]
  config.bptt.surrogate = "fast_sigmoid"
  config.bptt.surrogate_slope = 10.0
  return config
