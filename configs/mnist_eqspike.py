r"""EqSpike on MNIST, 784-512-10: spiking neurons, spike-driven local EP (the default of make train).

Command (full run):

  python -m launch.train --config configs/mnist_eqspike.py --workdir runs/mnist_eqspike

Expected: 98.16 % test accuracy after 6 epochs (96.45 % after the first), in about 6.5 minutes
on a 2-core CPU at about 1,030 training samples/s (results/mnist_eqspike.json). The paper reports
97.6 %; a prototype of the same neuron and rule at a constant learning rate plateaued at
96.7-97.0 %.

Quick variant (seconds; tests and CI): ``--config configs/mnist_eqspike.py:quick``.
"""

from eqspike_jax import config_lib


def get_config(variant: str = ""):
  config = config_lib.base_config("eqspike")
  config.name = "mnist_eqspike"
  config.layer_sizes = (784, 512, 10)
  config.t_free = 60
  config.t_nudge = 20
  config.beta = 0.5
  config.nudging = "symmetric"
  s = config.eqspike
  s.gamma = 0.2
  s.spike_mode = "deterministic"
  s.input_mode = "spikes"
  s.readout = "state"
  # S(t+1) with du(t): the spike paired with a state change has not caused it (spike_rule.py);
  # 98.16 % against 97.97 % for "same_step" in otherwise identical runs (README, results/).
  s.pairing = "next_step"
  config.optimizer = "adam"
  config.learning_rates = (5e-4, 5e-4)
  # At a constant rate the spike noise in the updates makes the weights drift: the test
  # accuracy peaks at 97.2 % in epoch 3 and then falls to 95.2 % by epoch 9
  # (results/variants/mnist_eqspike_same_step_constant_lr.json).
  config.lr_schedule = "cosine"
  config.batch_size = 50
  config.num_epochs = 6
  config.steps_per_call = 50
  return config_lib.apply_variant(config, variant)
