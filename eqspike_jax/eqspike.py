"""EqSpike: a spiking network that learns by spike-driven, local EP (EQSPIKE.md section 3).

Every free neuron keeps a state ``u`` in [0, 1] and talks to the others only through binary spikes:

* integration: ``u <- clip((1 - gamma) u + gamma I, 0, 1)`` with ``I_l = S_{l-1} W_{l-1} +
  S_{l+1} W_l^T + b_l`` (plus ``beta (y - u_o)`` at the output in a nudged phase);
* spikes: sigma-delta (``e <- e + u; S = [e >= 1]; e <- e - S``, so the firing rate is ``u``), or
  ``S ~ Bernoulli(u)`` from its own random stream.

The fixed point of the rates is ``u = clip(W u + b)``: the rate network of ``rate_ep`` with the
hard sigmoid, which is what the spiking network is tested against.

Time convention of one step: the spikes ``S(t)`` emitted at the end of the previous step drive the
integration ``u(t) -> u(t+1)``, then every neuron emits ``S(t+1)`` from ``u(t+1)``. The learning rule
pairs ``S(t)`` with ``du(t) = u(t+1) - u(t)``:

  ``dW_l(t) ∝ S_l(t)^T du_{l+1}(t) + du_l(t)^T S_{l+1}(t)``   (the second term is absent for the input).

``pairing="next_step"`` pairs ``du(t)`` with ``S(t+1)`` instead (see ``SpikingDynamics`` and
``self_coupling_sums`` for why); the input layer keeps ``S_x(t)``, whose self-coupling is the same
in both states of every contrast.

The maths is written for one example and vmapped; the rule is a reduction over the batch and time,
so it is written on the batch as one matmul over ``(batch, time)`` per weight layer.
"""

import dataclasses
import functools
from typing import Optional, Tuple

import chex
import flax
import jax
import jax.numpy as jnp
import optax

from eqspike_jax import network
from eqspike_jax import rate_ep
from eqspike_jax.network import Layer, Params

SPIKE_MODES = ("deterministic", "stochastic")
PAIRINGS = ("same_step", "next_step")
INPUT_MODES = ("spikes", "current")
READOUTS = ("state", "spike_count")


@dataclasses.dataclass(frozen=True)
class SpikingDynamics:
  """Static settings of the spiking dynamics (hashable, so usable under jit)."""
  gamma: float = 0.2              # dt / tau: the leak and integration rate, in (0, 1].
  t_free: int = 60
  t_nudge: int = 20
  spike_mode: str = "deterministic"
  input_mode: str = "spikes"      # Pixels as spike trains (what a chip receives) or as current.
  readout: str = "state"          # argmax of u_o, or of the output spike count.
  readout_steps: int = 20         # Steps at the end of the free phase counted by "spike_count".
  # Which spikes the rule pairs with du(t) = u(t+1) - u(t) of the other neuron: "same_step"
  # pairs S(t), which caused part of that du (the self-coupling bias); "next_step" pairs
  # S(t+1), emitted at the end of the same step, which has not yet reached the other neuron.
  pairing: str = "same_step"
  unroll: int = 1

  @property
  def stochastic(self) -> bool:
    return self.spike_mode == "stochastic"


# ================================================================================================
# One neuron layer, one example.
# ================================================================================================


@flax.struct.dataclass
class NeuronState:
  """A layer of spiking neurons (one example)."""
  u: chex.Array       # [n] state (membrane / rate variable), in [0, 1].
  e: chex.Array       # [n] sigma-delta accumulator, in [0, 1); unused by stochastic spikes.
  spikes: chex.Array  # [n] spikes emitted at the end of the last step, 0. or 1.


NetworkState = Tuple[NeuronState, ...]  # One per free layer.


def emit(e: chex.Array, u: chex.Array, stochastic: bool,
         key: Optional[chex.PRNGKey]) -> Tuple[chex.Array, chex.Array]:
  """Spikes at rate ``u``; returns the new accumulator and the spikes (0./1.)."""
  chex.assert_equal_shape([e, u])
  if stochastic:
    return e, jax.random.bernoulli(key, u).astype(u.dtype)
  e = e + u
  spikes = (e >= 1.0).astype(u.dtype)
  return e - spikes, spikes


def neuron_step(state: NeuronState, current: chex.Array, gamma: float, stochastic: bool,
                key: Optional[chex.PRNGKey] = None) -> Tuple[NeuronState, chex.Array]:
  """Leaky integration of ``current`` then spike emission: ``(state, input) -> (state, spikes)``."""
  chex.assert_equal_shape([state.u, current])
  u = jnp.clip((1.0 - gamma) * state.u + gamma * current, 0.0, 1.0)
  e, spikes = emit(state.e, u, stochastic, key)
  return NeuronState(u=u, e=e, spikes=spikes), spikes


def rest_state(n: int, dtype=jnp.float32) -> NeuronState:
  zeros = jnp.zeros((n,), dtype)
  return NeuronState(u=zeros, e=zeros, spikes=zeros)


def encode(x: chex.Array, num_steps: int, stochastic: bool,
           key: Optional[chex.PRNGKey] = None) -> chex.Array:
  """Spike trains of the clamped input at rates ``x``, ``[num_steps, n]``, from a fresh encoder."""
  chex.assert_rank(x, 1)

  def body(e, key_t):
    return emit(e, x, stochastic, key_t)

  keys = jax.random.split(key, num_steps) if stochastic else None
  _, spikes = jax.lax.scan(body, jnp.zeros_like(x), keys, length=num_steps)
  return spikes


# ================================================================================================
# The network, one example.
# ================================================================================================


@flax.struct.dataclass
class Trace:
  """What the learning rule and the event counts need from each step of a phase."""
  spikes: Tuple[chex.Array, ...]  # S_l(t) of every free layer, [T, n_l] per example.
  du: Tuple[chex.Array, ...]      # u_l(t+1) - u_l(t) of every free layer, [T, n_l].
  u: Optional[Tuple[chex.Array, ...]] = None  # u_l(t), the state S_l(t) was emitted from.


def network_step(params: Params, drive: chex.Array, state: NetworkState, y: chex.Array,
                 beta: chex.Numeric, dyn: SpikingDynamics,
                 key: Optional[chex.PRNGKey]) -> Tuple[NetworkState, Trace]:
  """One synchronous step of every free layer of one example.

  Args:
    params: the network.
    drive: this step's input drive ``S_x(t) @ W_0`` (or ``x @ W_0`` for current input), ``[n_1]``.
    state: every free layer; its ``spikes`` are ``S(t)``.
    y: one-hot target ``[n_out]``.
    beta: nudging strength (0 in the free phase).
    dyn: the dynamics.
    key: this step's key (stochastic spikes only).

  Returns:
    The new state and this step's ``Trace`` (``S(t)``, ``du(t)``, ``u(t)`` per layer).
  """
  chex.assert_rank([drive, y], 1)
  chex.assert_equal_shape([drive, state[0].u])
  chex.assert_equal_shape([y, state[-1].u])
  n = len(state)
  keys = jax.random.split(key, n) if dyn.stochastic else [None] * n
  spikes = tuple(layer.spikes for layer in state)
  new_state, du = [], []
  for l in range(n):
    current = (drive if l == 0 else spikes[l - 1] @ params[l].w) + params[l].b
    if l + 1 < n:
      current = current + spikes[l + 1] @ params[l + 1].w.T
    else:
      current = current + beta * (y - state[l].u)
    layer, _ = neuron_step(state[l], current, dyn.gamma, dyn.stochastic, keys[l])
    new_state.append(layer)
    du.append(layer.u - state[l].u)
  if dyn.pairing == "next_step":
    spikes = tuple(layer.spikes for layer in new_state)
  return tuple(new_state), Trace(spikes=spikes, du=tuple(du),
                                 u=tuple(layer.u for layer in state))


def run_phase(params: Params, drives: chex.Array, state0: NetworkState, y: chex.Array,
              beta: chex.Numeric, dyn: SpikingDynamics,
              key: Optional[chex.PRNGKey]) -> Tuple[NetworkState, Trace]:
  """Runs one example for ``len(drives)`` steps; returns the end state and the per-step trace."""
  chex.assert_rank(drives, 2)
  num_steps = drives.shape[0]
  keys = jax.random.split(key, num_steps) if dyn.stochastic else None

  def body(state, xs):
    drive_t, key_t = xs
    return network_step(params, drive_t, state, y, beta, dyn, key_t)

  return jax.lax.scan(body, state0, (drives, keys), unroll=dyn.unroll)


def batched_phase(params: Params, drives: chex.Array, state0: NetworkState, y: chex.Array,
                  beta: chex.Numeric, dyn: SpikingDynamics,
                  key: Optional[chex.PRNGKey]) -> Tuple[NetworkState, Trace]:
  """``run_phase`` over a batch: params, beta and dyn shared; each example its own stream."""
  phase = lambda p, d, s, t, b, k: run_phase(p, d, s, t, b, dyn, k)
  keys = jax.random.split(key, drives.shape[0]) if dyn.stochastic else None
  return jax.vmap(phase, in_axes=(None, 0, 0, 0, None, 0 if dyn.stochastic else None))(
      params, drives, state0, y, beta, keys)


def input_trains(x: chex.Array, num_steps: int, dyn: SpikingDynamics,
                 key: Optional[chex.PRNGKey]) -> chex.Array:
  """Input spike trains ``[B, T, n_0]`` of a batch (the pixel values themselves for current)."""
  chex.assert_rank(x, 2)
  if dyn.input_mode == "current":
    return jnp.broadcast_to(x[:, None, :], (x.shape[0], num_steps, x.shape[1]))
  keys = jax.random.split(key, x.shape[0]) if dyn.stochastic else None
  return jax.vmap(encode, in_axes=(0, None, None, 0 if dyn.stochastic else None))(
      x, num_steps, dyn.stochastic, keys)


def drives_of(params: Params, s_in: chex.Array, dyn: SpikingDynamics) -> chex.Array:
  """Every step's input drive ``S_x(t) @ W_0``, ``[B, T, n_1]``, as one matmul.

  The input does not depend on the network, so its trains are drawn before the phases and the
  drives of all steps come from one product over (batch, time) instead of T small ones.
  """
  chex.assert_rank(s_in, 3)
  if dyn.input_mode == "current":  # Constant: one product per example.
    drive = s_in[:, 0] @ params[0].w
    return jnp.broadcast_to(drive[:, None, :], s_in.shape[:2] + drive.shape[-1:])
  return s_in @ params[0].w


def input_drives(params: Params, x: chex.Array, num_steps: int, dyn: SpikingDynamics,
                 key: Optional[chex.PRNGKey]) -> Tuple[chex.Array, chex.Array]:
  """Input trains ``[B, T, n_0]`` and their drives ``[B, T, n_1]`` for a batch."""
  s_in = input_trains(x, num_steps, dyn, key)
  return s_in, drives_of(params, s_in, dyn)


def batched_rest_state(params: Params, batch: int, dtype=jnp.float32) -> NetworkState:
  return tuple(jax.tree.map(lambda a: jnp.broadcast_to(a, (batch,) + a.shape),
                            rest_state(layer.w.shape[1], dtype)) for layer in params)


def free_phase(params: Params, x: chex.Array, dyn: SpikingDynamics, key: chex.PRNGKey,
               num_steps: Optional[int] = None):
  """The free phase of a batch from rest: ``(s_in, end state, trace)``, batch-leading arrays."""
  num_steps = num_steps or dyn.t_free
  k_in, k_net = jax.random.split(key)
  s_in, drives = input_drives(params, x, num_steps, dyn, k_in)
  y0 = jnp.zeros((x.shape[0], params[-1].w.shape[1]), x.dtype)
  state0 = batched_rest_state(params, x.shape[0], x.dtype)
  state, trace = batched_phase(params, drives, state0, y0, 0.0, dyn, k_net)
  return s_in, state, trace


# ================================================================================================
# The spike-driven learning rule.
# ================================================================================================


def rule_sums(s_in: chex.Array, trace: Trace, s_in_b: Optional[chex.Array] = None,
              trace_b: Optional[Trace] = None) -> Params:
  """The rule summed over batch and time, ``sum_t S_pre^T du_post + du_pre^T S_post``.

  With a second trace ``b``, returns the difference ``R(a) - R(b)``. When ``s_in_b`` is None the
  two traces share the input spikes (the two nudged phases of symmetric EP, which continue the
  same input trains), so the input layer's term costs one matmul on ``du_a - du_b``.

  Arrays are ``[B, T, n]``; the result has the shapes of ``params``.
  """
  chex.assert_rank(s_in, 3)
  n = len(trace.du)
  sums = []
  for l in range(n):
    if l == 0:
      if trace_b is None:
        dw = jnp.einsum("btn,btm->nm", s_in, trace.du[0])
      elif s_in_b is None:
        dw = jnp.einsum("btn,btm->nm", s_in, trace.du[0] - trace_b.du[0])
      else:
        dw = (jnp.einsum("btn,btm->nm", s_in, trace.du[0])
              - jnp.einsum("btn,btm->nm", s_in_b, trace_b.du[0]))
    else:
      dw = (jnp.einsum("btn,btm->nm", trace.spikes[l - 1], trace.du[l])
            + jnp.einsum("btn,btm->nm", trace.du[l - 1], trace.spikes[l]))
      if trace_b is not None:
        dw -= (jnp.einsum("btn,btm->nm", trace_b.spikes[l - 1], trace_b.du[l])
               + jnp.einsum("btn,btm->nm", trace_b.du[l - 1], trace_b.spikes[l]))
    db = jnp.sum(trace.du[l], axis=(0, 1))
    if trace_b is not None:
      db -= jnp.sum(trace_b.du[l], axis=(0, 1))
    sums.append(Layer(w=dw, b=db))
  return tuple(sums)


def self_coupling_sums(params: Params, gamma: float, trace: Trace) -> Params:
  """The part of the rule's sum that a synapse's own spikes put into its neighbour's ``du``.

  A spike ``S_j(t)`` changes ``u_i`` by ``gamma W_ij S_j(t)`` at once (when ``u_i`` is not
  clipped), and the rule then pairs that change with the same spike: ``du_i S_j`` holds
  ``gamma W_ij S_j^2 = gamma W_ij S_j``, where the rate network has ``gamma W_ij u_j^2``. The
  difference, ``gamma W_ij S_j (1 - u_j)`` per step (its mean is the spike variance), is this
  function's sum over batch and time, for both directions of every synapse between free layers.
  It does not vanish as beta -> 0 relative to the signal and grows with ``W``; subtracting it
  (``debias``) leaves a rule that still uses only quantities local to the synapse. The input
  layer is left out: its spikes are the same in both states of every contrast, so its term
  cancels there.
  """
  sums = []
  for l in range(len(trace.du)):
    if l == 0:
      sums.append(Layer(w=jnp.zeros_like(params[0].w), b=jnp.zeros_like(params[0].b)))
      continue
    free = [((u + du) > 0.0) & ((u + du) < 1.0) for u, du in
            zip(trace.u[l - 1:l + 1], trace.du[l - 1:l + 1])]  # Not clipped at t + 1.
    var = [s * (1.0 - u) for s, u in zip(trace.spikes[l - 1:l + 1], trace.u[l - 1:l + 1])]
    dtype = var[0].dtype
    paired = (jnp.einsum("btn,btm->nm", var[0], free[1].astype(dtype))
              + jnp.einsum("btn,btm->nm", free[0].astype(dtype), var[1]))
    sums.append(Layer(w=gamma * params[l].w * paired, b=jnp.zeros_like(params[l].b)))
  return tuple(sums)


def debiased_rule_sums(params: Params, gamma: float, s_in, trace, s_in_b=None, trace_b=None):
  """``rule_sums`` less the self-coupling of every trace (see ``self_coupling_sums``)."""
  sums = rule_sums(s_in, trace, s_in_b, trace_b)
  correction = self_coupling_sums(params, gamma, trace)
  if trace_b is not None:
    correction = jax.tree.map(jnp.subtract, correction, self_coupling_sums(params, gamma, trace_b))
  return jax.tree.map(jnp.subtract, sums, correction)


def _scale(sums: Params, factor) -> Params:
  return jax.tree.map(lambda a: factor * a, sums)


def _slice_time(tree, start, stop):
  return jax.tree.map(lambda a: a[:, start:stop], tree)


# ================================================================================================
# Event counts (inputs of the energy model).
# ================================================================================================


def phase_events(params: Params, s_in: chex.Array, trace: Trace, learning: bool) -> dict:
  """Per-example event counts of one phase, averaged over the batch.

  * spikes per layer (the input included);
  * synaptic operations: every spike is delivered to each of its targets (forward to the next
    layer and, for free layers, back to the previous free layer);
  * neuron updates: every free neuron integrates once per step;
  * synaptic updates (``learning`` phases only): a synapse is written at a step when either of
    its neurons spikes (the input layer's synapses only on input spikes, since the input state
    never changes).
  """
  sizes = network.layer_sizes_of(params)
  batch, steps = s_in.shape[:2]
  counts = [jnp.sum(s_in, -1)] + [jnp.sum(s, -1) for s in trace.spikes]  # [B, T] per layer.
  events = {}
  sops = jnp.zeros((batch,))
  for l, c in enumerate(counts):
    events[f"spikes/layer{l}"] = jnp.mean(jnp.sum(c, -1))
    fan_out = (sizes[l + 1] if l + 1 < len(sizes) else 0) + (sizes[l - 1] if l >= 2 else 0)
    sops += jnp.sum(c, -1) * fan_out
  events["synaptic_ops"] = jnp.mean(sops)
  events["neuron_updates"] = jnp.asarray(steps * sum(sizes[1:]), jnp.float32)
  if learning:
    writes = jnp.zeros((batch,))
    for l in range(len(sizes) - 1):
      pre, post = counts[l], counts[l + 1]
      if l == 0:
        writes += jnp.sum(pre * sizes[1], -1)
      else:  # The union of the rows of spiking pre and the columns of spiking post neurons.
        writes += jnp.sum(pre * sizes[l + 1] + post * sizes[l] - pre * post, -1)
    events["synaptic_updates"] = jnp.mean(writes)
  return events


# ================================================================================================
# Gradient estimate and updates.
# ================================================================================================


def readout(state: NetworkState, trace: Trace, dyn: SpikingDynamics) -> chex.Array:
  """The output the prediction is the argmax of, ``[B, n_out]``."""
  if dyn.readout == "spike_count":
    return jnp.mean(trace.spikes[-1][:, -dyn.readout_steps:], axis=1)
  return state[-1].u


def _check_contrast(dyn: SpikingDynamics, nudging: str, free_contrast: bool) -> None:
  if nudging != "symmetric" and free_contrast and dyn.t_nudge > dyn.t_free:
    raise ValueError(f"free_contrast gathers the rule over the last t_nudge steps of the free "
                     f"phase, so it needs t_free >= t_nudge (got t_free {dyn.t_free}, t_nudge "
                     f"{dyn.t_nudge}).")


def free_phase_with_input(params, x, y, key, dyn):
  """Input trains for both phases, then the free phase: ``(s_in, s_free, tr_free)``.

  The free phase is ``free_phase``'s for the same key (the encoder's first ``t_free`` steps do
  not depend on how many follow); the trains go on into the nudged phases.
  """
  k_in, k_free = jax.random.split(key)
  s_in = input_trains(x, dyn.t_free + dyn.t_nudge, dyn, k_in)
  state0 = batched_rest_state(params, x.shape[0], x.dtype)
  drives = drives_of(params, s_in[:, :dyn.t_free], dyn)
  s_free, tr_free = batched_phase(params, drives, state0, y, 0.0, dyn, k_free)
  return s_in, s_free, tr_free


def nudged_phases(params: Params, drives: chex.Array, s_free: NetworkState, y: chex.Array,
                  betas: chex.Array, dyn: SpikingDynamics, key: Optional[chex.PRNGKey]):
  """The nudged phases at each of ``betas`` side by side, from the free end state.

  They continue the same input drives and (stochastic spikes) draw the same random stream, so
  they differ only by the nudge. Returns ``(states, traces)`` with a leading axis over ``betas``.
  """
  chex.assert_rank(betas, 1)
  phases = jax.vmap(functools.partial(batched_phase, dyn=dyn, key=key),
                    in_axes=(None, None, None, None, 0))
  return phases(params, drives, s_free, y, betas)


def _metrics(params, y, s_in, s_free, tr_free, nudged_traces, dyn, nudging, free_contrast):
  """Loss and accuracy of the free phase, its residual, and the event counts of every phase."""
  out = readout(s_free, tr_free, dyn)
  metrics = {
      "loss": jnp.mean(network.cost(s_free[-1].u, y)),
      "accuracy": jnp.mean(jnp.argmax(out, -1) == jnp.argmax(y, -1)),
      # Spiking states never settle exactly; this says how far from settled they are.
      "residual": jnp.mean(jnp.max(jnp.concatenate([jnp.abs(d[:, -1]) for d in tr_free.du], -1),
                                   -1)),
  }
  s_in_free, s_in_nudge = s_in[:, :dyn.t_free], s_in[:, dyn.t_free:]
  for name, v in phase_events(params, s_in_free, tr_free, learning=False).items():
    metrics[f"events/free/{name}"] = v
  if nudging != "symmetric" and free_contrast:
    # The contrast's updates are written during the free-phase tail.
    start = dyn.t_free - dyn.t_nudge
    tail = phase_events(params, s_in_free[:, start:], _slice_time(tr_free, start, dyn.t_free),
                        learning=True)
    metrics["events/free/synaptic_updates"] = tail["synaptic_updates"]
  nudged = [phase_events(params, s_in_nudge, tr, learning=True) for tr in nudged_traces]
  for name in nudged[0]:
    metrics[f"events/nudged/{name}"] = sum(e[name] for e in nudged)
  return metrics


def eqspike_gradient(params: Params, x: chex.Array, y: chex.Array, key: chex.PRNGKey, *,
                     dyn: SpikingDynamics, beta: float, nudging: str,
                     free_contrast: bool = True, debias: bool = False
                     ) -> Tuple[Params, dict]:
  """Free phase, nudged phase(s), and the spike-driven rule accumulated over the nudged phase.

  The rule pairs ``S_pre(t)`` with ``du_post(t)``, which are correlated even at equilibrium and at
  beta = 0, because the spike at t drives the state at t + 1. That bias is the same in every
  phase, so it cancels in symmetric nudging (+beta minus -beta); a one-sided phase subtracts the
  same statistic gathered over the last ``t_nudge`` steps of the free phase (``free_contrast``).
  What cancels is only its value at beta = 0: its change with beta survives the contrast, and
  ``debias`` removes it (``self_coupling_sums``).

  Returns:
    The estimate of ``dC/dtheta`` (the negative of the update) and per-batch metrics.
  """
  chex.assert_rank([x, y], 2)
  chex.assert_equal_shape_prefix([x, y], prefix_len=1)
  _check_contrast(dyn, nudging, free_contrast)
  batch = x.shape[0]
  rule = functools.partial(debiased_rule_sums, params, dyn.gamma) if debias else rule_sums
  k_free, k_nudge, k_sign = jax.random.split(key, 3)
  s_in, s_free, tr_free = free_phase_with_input(params, x, y, k_free, dyn)
  s_in_nudge = s_in[:, dyn.t_free:]
  drives_nudge = drives_of(params, s_in_nudge, dyn)

  if nudging == "symmetric":
    # Both phases continue the same input trains and (stochastic spikes) the same random stream,
    # so their difference holds only what the nudge changed.
    _, tr_pm = nudged_phases(params, drives_nudge, s_free, y, jnp.array([beta, -beta], x.dtype),
                             dyn, k_nudge)
    nudged_traces = [jax.tree.map(lambda a: a[0], tr_pm), jax.tree.map(lambda a: a[1], tr_pm)]
    sums = rule(s_in_nudge, nudged_traces[0], None, nudged_traces[1])
    grads = _scale(sums, -1.0 / (2 * beta * batch))
  else:
    b = rate_ep.signed_beta(beta, nudging, k_sign)
    _, tr_nudge = batched_phase(params, drives_nudge, s_free, y, b, dyn, k_nudge)
    nudged_traces = [tr_nudge]
    if free_contrast:
      start = dyn.t_free - dyn.t_nudge
      sums = rule(s_in_nudge, tr_nudge, s_in[:, start:dyn.t_free],
                  _slice_time(tr_free, start, dyn.t_free))
    else:
      sums = rule(s_in_nudge, tr_nudge)
    grads = _scale(sums, -1.0 / (b * batch))
  return grads, _metrics(params, y, s_in, s_free, tr_free, nudged_traces, dyn, nudging,
                         free_contrast)


def accumulated_update(params, opt_state, x, y, key, *, dyn, beta, nudging, free_contrast,
                       optimizer, debias: bool = False, axis_name: Optional[str] = None):
  """The rule summed over the nudged phase, applied once per batch through ``optimizer``."""
  grads, metrics = eqspike_gradient(params, x, y, key, dyn=dyn, beta=beta, nudging=nudging,
                                    free_contrast=free_contrast, debias=debias)
  if axis_name is not None:
    grads, metrics = jax.lax.pmean((grads, metrics), axis_name)
  updates, opt_state = optimizer.update(grads, opt_state, params)
  params = optax.apply_updates(params, updates)
  return params, opt_state, {**metrics, **rate_ep.gradient_norms(grads)}


def online_update(params, opt_state, x, y, key, *, dyn, beta, nudging, free_contrast,
                  optimizer, debias: bool = False, axis_name: Optional[str] = None):
  """The rule applied at every nudged step, as a chip would: the dynamics see the moving weights.

  Symmetric nudging runs the +beta and -beta copies side by side on the shared, moving weights
  and applies their difference at each step. One-sided nudging with ``free_contrast`` pairs
  nudged step k with free-phase-tail step k (recorded at the free weights). Summed over the phase
  the per-step changes are the accumulated update to first order in the learning rate
  (``tests/eqspike_online_test.py``); each step is one optimizer step, so use SGD.
  """
  chex.assert_rank([x, y], 2)
  _check_contrast(dyn, nudging, free_contrast)
  batch = x.shape[0]
  k_free, k_nudge, k_sign = jax.random.split(key, 3)
  s_in, s_free, tr_free = free_phase_with_input(params, x, y, k_free, dyn)
  s_in_nudge = s_in[:, dyn.t_free:]
  start = dyn.t_free - dyn.t_nudge
  symmetric = nudging == "symmetric"
  if symmetric:
    betas = jnp.array([beta, -beta], x.dtype)
    states = jax.tree.map(lambda a: jnp.stack([a, a]), s_free)
    scale = -1.0 / (2 * beta * batch)
  else:
    betas = rate_ep.signed_beta(beta, nudging, k_sign)
    states = s_free
    scale = -1.0 / (betas * batch)

  def one_step(params, drive_t, state, beta_t, keys_t):
    step_fn = lambda p, d, s, t, b, k: network_step(p, d, s, t, b, dyn, k)
    return jax.vmap(step_fn, in_axes=(None, 0, 0, 0, None, 0 if dyn.stochastic else None))(
        params, drive_t, state, y, beta_t, keys_t)

  def as_trace(obs):  # One step as a trace of length 1.
    return jax.tree.map(lambda a: a[:, None], obs)

  def body(carry, xs):
    params, opt_state, states, total = carry
    s_in_t, tail_s_in_t, tail_t, key_t = xs
    # The synapse corrects with its current weight.
    rule = functools.partial(debiased_rule_sums, params, dyn.gamma) if debias else rule_sums
    drive_t = s_in_t @ params[0].w  # The weights moved at the last step.
    if symmetric:
      states, obs = jax.vmap(one_step, in_axes=(None, None, 0, 0, None))(
          params, drive_t, states, betas, key_t)
      obs_a, obs_b = jax.tree.map(lambda a: a[0], obs), jax.tree.map(lambda a: a[1], obs)
      sums = rule(s_in_t[:, None], as_trace(obs_a), None, as_trace(obs_b))
    else:
      states, obs_a = one_step(params, drive_t, states, betas, key_t)
      obs = obs_a
      if free_contrast:
        sums = rule(s_in_t[:, None], as_trace(obs_a), tail_s_in_t[:, None], as_trace(tail_t))
      else:
        sums = rule(s_in_t[:, None], as_trace(obs_a))
    grads = _scale(sums, scale)
    if axis_name is not None:
      grads = jax.lax.pmean(grads, axis_name)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    return (params, opt_state, states, jax.tree.map(jnp.add, total, grads)), obs

  time_major = lambda a: jnp.swapaxes(a, 0, 1)
  tail = _slice_time(tr_free, start, dyn.t_free)
  # The same per-example, per-step keys as batched_phase draws, so both modes see the same spikes.
  step_keys = (time_major(jax.vmap(lambda k: jax.random.split(k, dyn.t_nudge))(
      jax.random.split(k_nudge, batch))) if dyn.stochastic else None)
  xs = (time_major(s_in_nudge), time_major(s_in[:, start:dyn.t_free]),
        jax.tree.map(time_major, tail), step_keys)
  zeros = jax.tree.map(jnp.zeros_like, params)
  (params, opt_state, _, total), obs = jax.lax.scan(
      body, (params, opt_state, states, zeros), xs, unroll=dyn.unroll)
  # obs is time-major; the event counts take batch-major traces.
  if symmetric:
    nudged_traces = [jax.tree.map(lambda a, i=i: time_major(a[:, i]), obs) for i in (0, 1)]
  else:
    nudged_traces = [jax.tree.map(time_major, obs)]
  metrics = _metrics(params, y, s_in, s_free, tr_free, nudged_traces, dyn, nudging,
                     free_contrast)
  if axis_name is not None:
    metrics = jax.lax.pmean(metrics, axis_name)
  return params, opt_state, {**metrics, **rate_ep.gradient_norms(total)}


def predict(params: Params, x: chex.Array, key: chex.PRNGKey, *,
            dyn: SpikingDynamics) -> chex.Array:
  s_in, state, trace = free_phase(params, x, dyn, key)
  del s_in
  return readout(state, trace, dyn)


def make_algorithm(config, optimizer: optax.GradientTransformation) -> rate_ep.Algorithm:
  dyn = dynamics_from_config(config)
  if config.update_mode == "online":
    update_fn = online_update
  else:
    update_fn = accumulated_update

  def init(key):
    return network.init_params(key, config.layer_sizes, config.init, config.init_scale)

  def update(params, opt_state, x, y, key, axis_name=None):
    return update_fn(params, opt_state, x, y, key, dyn=dyn, beta=config.beta,
                     nudging=config.nudging, free_contrast=config.free_contrast,
                     debias=config.debias, optimizer=optimizer, axis_name=axis_name)

  def predict_fn(params, x, key):
    return predict(params, x, key, dyn=dyn)

  return rate_ep.Algorithm(init_params=init, update=update, predict=predict_fn)


def dynamics_from_config(config) -> SpikingDynamics:
  return SpikingDynamics(gamma=config.gamma, t_free=config.t_free, t_nudge=config.t_nudge,
                         spike_mode=config.spike_mode, input_mode=config.input_mode,
                         readout=config.readout, readout_steps=config.readout_steps,
                         pairing=config.pairing, unroll=config.scan_unroll)

