"""EqSpike's learning rule: spike-driven, local, summed over batch and time (EQSPIKE.md 3).

During a nudged phase a synapse between ``pre`` and ``post`` changes when one of its neurons
spikes, by the state change of the other:

  ``dW_l(t) ∝ S_pre(t) du_post(t) + du_pre(t) S_post(t)``   (no second term for the input layer).

Which spikes are paired with ``du(t) = u(t+1) - u(t)`` is this module's choice (``pairing``), not
the dynamics': ``same_step`` pairs ``S(t)``, the spikes that drove that change (and so caused part
of it: the self-coupling bias, ``self_coupling_sums``); ``next_step`` pairs ``S(t+1)``, emitted at
the end of the same step, which has not yet reached the other neuron. The input layer always
pairs its train ``S_x(t)``: its self-coupling is the same in both states of every contrast.

The rule is a reduction over the batch and time, so it is written on the batch: one ``outer``
over ``(batch, time)`` per weight layer.
"""

import dataclasses
from typing import Optional, Tuple

import chex
import jax
import jax.numpy as jnp

from eqspike_jax.layers import Architecture
from eqspike_jax.network import Layer, Params
from eqspike_jax.spiking import Trace

# "state": a spike is paired with the other neuron's state u, not its change (a contrastive
# Hebbian time average; see correlation_sums).
PAIRINGS = ("same_step", "next_step", "state")


@dataclasses.dataclass(frozen=True)
class Rule:
  """How the rule pairs spikes with state changes, and whether it removes the self-coupling."""
  pairing: str = "next_step"
  debias: bool = False  # Subtract the self-coupling of same-step pairing (see self_coupling_sums).
  gamma: float = 0.2    # The neurons' integration rate, which sets the self-coupling.
  # "state" pairing: learn over the last `window` steps of each nudged phase only (0: all of
  # them). A global phase signal, like beta: it skips the transient while the nudge spreads.
  window: int = 0

  def __post_init__(self):
    if self.pairing not in PAIRINGS:
      raise ValueError(f"pairing must be one of {PAIRINGS}, got {self.pairing!r}.")
    if self.window < 0 or (self.window and self.pairing != "state"):
      raise ValueError(f"window = {self.window}: a non-negative number of steps, used by the "
                       f"'state' pairing only.")
    if self.debias and self.pairing != "same_step":
      raise ValueError("debias subtracts the self-coupling of same-step pairing; next-step "
                       "pairing has none.")

  @property
  def correlational(self) -> bool:
    """Spikes paired with states (a time average), not with state changes (a time sum)."""
    return self.pairing == "state"

  def paired(self, trace: Trace) -> Tuple[chex.Array, ...]:
    """The spikes of the free layers the rule multiplies with the other neuron's ``du``."""
    if self.correlational and self.window:
      trace = _last_steps(trace, self.window)
    return trace.received if self.pairing == "same_step" else trace.emitted

  def paired_input(self, s_in: chex.Array) -> chex.Array:
    """The input spikes the rule pairs (all of them, or the window's)."""
    return s_in[:, -self.window:] if self.correlational and self.window else s_in

  def sums(self, arch: Architecture, params: Params, s_in: chex.Array, trace: Trace,
           s_in_b: Optional[chex.Array] = None, trace_b: Optional[Trace] = None) -> Params:
    """The rule summed over batch and time: ``R(a)``, or ``R(a) - R(b)`` with a second trace.

    When ``s_in_b`` is None the two traces share the input spikes (the two nudged phases of
    symmetric EP continue the same input trains), so the input layer's term costs one product
    on ``du_a - du_b``. Arrays are ``[B, T, n]``; the result has the shapes of ``params``.
    """
    chex.assert_rank(s_in, 3)
    if self.correlational:
      return correlation_sums(arch, s_in, trace, s_in_b, trace_b, self.window)
    paired_b = None if trace_b is None else self.paired(trace_b)
    sums = raw_sums(arch, s_in, trace.du, self.paired(trace), s_in_b,
                    None if trace_b is None else trace_b.du, paired_b)
    if not self.debias:
      return sums
    correction = self_coupling_sums(arch, params, self.gamma, trace)
    if trace_b is not None:
      correction = jax.tree.map(jnp.subtract, correction,
                                self_coupling_sums(arch, params, self.gamma, trace_b))
    return jax.tree.map(jnp.subtract, sums, correction)


def raw_sums(arch: Architecture, s_in: chex.Array, du: Tuple, spikes: Tuple,
             s_in_b: Optional[chex.Array] = None, du_b: Optional[Tuple] = None,
             spikes_b: Optional[Tuple] = None) -> Params:
  """``sum_t outer(S_pre, du_post) + outer(du_pre, S_post)`` per layer, less that of ``b``."""
  sums = []
  for l in range(len(du)):
    if l == 0:
      if du_b is None:
        dw = arch[0].outer(s_in, du[0])
      elif s_in_b is None:
        dw = arch[0].outer(s_in, du[0] - du_b[0])
      else:
        dw = arch[0].outer(s_in, du[0]) - arch[0].outer(s_in_b, du_b[0])
    else:
      dw = arch[l].outer(spikes[l - 1], du[l]) + arch[l].outer(du[l - 1], spikes[l])
      if du_b is not None:
        dw -= arch[l].outer(spikes_b[l - 1], du_b[l]) + arch[l].outer(du_b[l - 1], spikes_b[l])
    db = jnp.sum(du[l], axis=(0, 1))
    if du_b is not None:
      db -= jnp.sum(du_b[l], axis=(0, 1))
    sums.append(Layer(w=dw, b=db))
  return tuple(sums)


def _last_steps(tree, window: int):
  return jax.tree.map(lambda a: a[:, -window:], tree)


def correlation_sums(arch: Architecture, s_in: chex.Array, trace: Trace,
                     s_in_b: Optional[chex.Array] = None, trace_b: Optional[Trace] = None,
                     window: int = 0) -> Params:
  """``mean_t [S_pre u_post + u_pre S_post] / 2`` per layer, less that of ``b`` (``pairing="state"``).

  At each spike a synapse adds the other neuron's state ``u(t+1)`` (which that spike has not yet
  reached): summed over the phase this estimates ``u_pre u_post``, EP's ``dPhi/dW``, averaged
  over the phase. The sigma-delta error of a spike train is bounded, so the noise of the average
  falls as ``1/T``, where the change-pairing rules' time sum of ``S du`` keeps the noise of every
  step. The input layer pairs its train with ``u_post`` (one term); the bias sums the unit's own
  spikes. Divided by the number of steps, so the contrast has the scale of EP's.
  """
  def one(s_in, trace):
    if window:
      s_in, trace = s_in[:, -window:], _last_steps(trace, window)
    u_next = [u + du for u, du in zip(trace.u, trace.du)]  # u(t+1), with S(t+1).
    spikes, steps = trace.emitted, s_in.shape[1]
    sums = []
    for l in range(len(u_next)):
      if l == 0:
        dw = arch[0].outer(s_in, u_next[0])
      else:
        dw = 0.5 * (arch[l].outer(spikes[l - 1], u_next[l]) + arch[l].outer(u_next[l - 1],
                                                                           spikes[l]))
      sums.append(Layer(w=dw / steps, b=jnp.sum(spikes[l], axis=(0, 1)) / steps))
    return tuple(sums)

  sums = one(s_in, trace)
  if trace_b is None:
    return sums
  return jax.tree.map(jnp.subtract, sums, one(s_in if s_in_b is None else s_in_b, trace_b))


def self_coupling_sums(arch: Architecture, params: Params, gamma: float, trace: Trace) -> Params:
  """The part of the same-step rule's sum that a synapse's own spikes put into ``du``.

  A spike ``S_j(t)`` changes ``u_i`` by ``gamma W_ij S_j(t)`` at once (when ``u_i`` is not
  clipped), and same-step pairing then multiplies that change with the same spike: ``du_i S_j``
  holds ``gamma W_ij S_j^2 = gamma W_ij S_j``, where the rate network has ``gamma W_ij u_j^2``.
  The difference, ``gamma W_ij S_j (1 - u_j)`` per step (its mean is the spike variance), is this
  function's sum over batch and time, for both directions of every synapse between free layers.
  It does not vanish as beta -> 0 relative to the signal and grows with ``W``; subtracting it
  (``debias``) leaves a rule that still uses only quantities local to the synapse. The input
  layer is left out: its spikes are the same in both states of every contrast.
  """
  sums = [Layer(w=jnp.zeros_like(params[0].w), b=jnp.zeros_like(params[0].b))]
  for l in range(1, len(trace.du)):
    free = [((u + du) > 0.0) & ((u + du) < 1.0) for u, du in
            zip(trace.u[l - 1:l + 1], trace.du[l - 1:l + 1])]  # Not clipped at t + 1.
    var = [s * (1.0 - u) for s, u in zip(trace.received[l - 1:l + 1], trace.u[l - 1:l + 1])]
    dtype = var[0].dtype
    paired = (arch[l].outer(var[0], free[1].astype(dtype))
              + arch[l].outer(free[0].astype(dtype), var[1]))
    sums.append(Layer(w=gamma * params[l].w * paired, b=jnp.zeros_like(params[l].b)))
  return tuple(sums)
