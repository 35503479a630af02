"""``config.bptt``: the surrogate-gradient baseline's fields (plain data; no jax import)."""

import ml_collections


def defaults() -> ml_collections.ConfigDict:
  s = ml_collections.ConfigDict()
  # The spiking network itself: the same fields, meanings and defaults as config.eqspike.
  s.gamma = 0.2
  s.spike_mode = "deterministic"  # Or "stochastic" (straight-through Bernoulli), "rate".
  s.input_mode = "spikes"
  s.readout = "state"
  s.readout_steps = 20
  # The spike's surrogate derivative (surrogate.py).
  s.surrogate = "fast_sigmoid"    # Or "straight_through".
  s.surrogate_slope = 10.0        # fast_sigmoid: dS/dv = 1 / (slope |v| + 1)^2.
  return s
