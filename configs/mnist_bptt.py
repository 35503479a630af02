r"""Surrogate-gradient BPTT on the EqSpike network, MNIST 784-512-10: the baseline to compare with.

The same spiking network as configs/mnist_eqspike.py (gamma 0.2, sigma-delta spikes, spiking
input, symmetric weights, state readout after a 60-step free phase, Adam 5e-4 with cosine decay,
batch 50, 6 epochs), trained by jax.grad through the free phase with a fast-sigmoid surrogate
for the spike. Non-local: see eqspike_jax/models/bptt.py.

Command (full run):

  python -m launch.train --config configs/mnist_bptt.py --workdir runs/mnist_bptt

Quick variant (seconds; tests and CI): ``--config configs/mnist_bptt.py:quick``.
"""

from eqspike_jax import config_lib


def get_config(variant: str = ""):
  config = config_lib.base_config("bptt")
  config.name = "mnist_bptt"
  config.layer_sizes = (784, 512, 10)
  config.t_free = 60
  s = config.bptt
  s.gamma = 0.2
  s.spike_mode = "deterministic"
  s.input_mode = "spikes"
  s.readout = "state"
  s.surrogate = "fast_sigmoid"
  s.surrogate_slope = 10.0
  config.optimizer = "adam"
  config.learning_rates = (5e-4, 5e-4)
  config.lr_schedule = "cosine"
  config.batch_size = 50
  config.num_epochs = 6
  config.steps_per_call = 50
  return config_lib.apply_variant(config, variant)
