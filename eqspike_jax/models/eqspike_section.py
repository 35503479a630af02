"""``config.eqspike``: the fields only the spiking model reads (plain data; no jax import)."""

import ml_collections


def defaults() -> ml_collections.ConfigDict:
  s = ml_collections.ConfigDict()
  s.gamma = 0.2                   # dt / tau, in (0, 1].
  s.spike_mode = "deterministic"  # Sigma-delta; or "stochastic" (Bernoulli(u)).
  s.input_mode = "spikes"         # Pixels as spike trains; or "current" (graded events).
  s.readout = "state"             # argmax of u_o; or "spike_count" over the last readout_steps.
  s.readout_steps = 20
  s.free_contrast = True          # One-sided nudging: subtract the free-phase tail's statistic.
  s.debias = False                # Subtract each synapse's self-coupling (same-step pairing).
  s.pairing = "next_step"         # Spikes paired with du(t): S(t+1), or S(t) ("same_step");
  #                                 "state": with the other neuron's u (a time average).
  s.state_bits = 0                # Neuron states u on 2^k levels (nearest); 0 = float.
  s.stream_free_phase = False     # Trace only the free phase's last steps (memory flat in T).
  s.window = 0                    # "state": learn over the last `window` nudged steps (0: all).
  return s
