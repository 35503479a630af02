"""Spike-timing dependence of EqSpike's weight updates (EQSPIKE.md section 5).

The rule changes a synapse only when one of its two neurons spikes, by the change of the *other*
neuron's state: ``dW = (1/beta) sum_t [S_pre(t) du_post(t) + du_pre(t) S_post(t)]`` (the second
term is absent when the presynaptic neuron is an input). Two measurements of how that change
depends on the timing of pre- and postsynaptic spikes:

* ``isolated_window``: one synapse, a presynaptic spike at ``t_pre`` and a postsynaptic neuron
  driven from rest by a current step until it spikes, at ``t_post``. A presynaptic spike while the
  postsynaptic state rises (``t_pre <= t_post``) potentiates; one while it decays afterwards
  depresses, by ``gamma u_peak (1 - gamma)^(k-1)`` at ``k = t_pre - t_post`` steps, so the
  depression decays over the integration time ``1 / gamma``. The potentiation side lasts as long
  as the rise: the drive's ``steps to first spike``. A ``-beta`` phase applies the same spike
  timing with the opposite sign: it is anti-Hebbian, and symmetric EP, which adds the two,
  keeps only the part of the timing the nudge changed.
* ``in_vivo_window``: a trained network's nudged phases on real images; every pair of a
  presynaptic and a postsynaptic spike at lag ``t_post - t_pre`` within the phase, and the weight
  change the rule made at those spikes, averaged per pair.

Spike times are the steps the spikes are delivered at: an input spike ``S_x(t)`` drives step
``t``; a free neuron's spike emitted at the end of step ``t`` is delivered at ``t + 1``.

For a synapse between two free neurons the rule is symmetric under exchanging them (the weights
are symmetric), so its full window is the pre-triggered window plus its mirror image; with the two
neurons driven alike it is even in ``t_post - t_pre``. ``isolated_window(kind="free")`` shows it.
"""

import dataclasses
import functools
from typing import Dict, Tuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from eqspike_jax import eqspike
from eqspike_jax.network import Params

KINDS = ("input", "free")


# ================================================================================================
# One synapse in isolation.
# ================================================================================================


@dataclasses.dataclass(frozen=True)
class Protocol:
  """The isolated-synapse experiment."""
  gamma: float = 0.2        # The neurons' dt / tau, as in the network.
  num_steps: int = 64       # Length of the nudged phase the rule is applied over.
  post_onset: int = 30      # Step the postsynaptic drive switches on.
  amplitude: float = 1.0    # The drive current; it stays on until the neuron's first spike.
  weight: float = 0.0       # The synapse's own weight (its self-coupling; 0 isolates timing).
  kind: str = "input"       # "input": the presynaptic neuron is an input spike source (one term);
                            # "free": a free neuron driven like the postsynaptic one (two terms).

  def __post_init__(self):
    if self.kind not in KINDS:
      raise ValueError(f"Protocol.kind = {self.kind!r}: must be one of {KINDS}.")
    if not 0.0 < self.gamma <= 1.0:
      raise ValueError(f"Protocol.gamma = {self.gamma}: must be in (0, 1].")
    if not 0 < self.post_onset < self.num_steps:
      raise ValueError(f"Protocol.post_onset = {self.post_onset}: must be inside the "
                       f"{self.num_steps}-step phase.")
    if self.amplitude * self.gamma <= 0.0:
      raise ValueError(f"Protocol.amplitude = {self.amplitude}: must be > 0 to make the "
                       f"neuron spike.")


def steps_to_spike(gamma: float, amplitude: float, max_steps: int = 10_000) -> int:
  """Steps a current ``amplitude`` takes to make a neuron at rest emit its first spike."""
  u = e = 0.0
  for k in range(1, max_steps + 1):
    u = min(max((1.0 - gamma) * u + gamma * amplitude, 0.0), 1.0)
    e += u
    if e >= 1.0:
      return k
  raise ValueError(f"a current of {amplitude} never makes a neuron with gamma {gamma} spike "
                   f"within {max_steps} steps; raise the amplitude.")


def drive_step(num_steps: int, onset: int, width: int, amplitude: float) -> chex.Array:
  """The current ``[num_steps]``: ``amplitude`` at steps ``onset .. onset + width - 1``."""
  t = jnp.arange(num_steps)
  return jnp.where((t >= onset) & (t < onset + width), amplitude, 0.0)


def run_neuron(current: chex.Array, gamma: float) -> Tuple[chex.Array, chex.Array, chex.Array]:
  """One sigma-delta neuron from rest: ``(u [T+1], du [T], emitted spikes [T])``.

  ``spikes[t]`` is emitted at the end of step ``t`` (from ``u[t + 1]``) and delivered at
  ``t + 1``.
  """
  chex.assert_rank(current, 1)
  state0 = eqspike.rest_state(1, current.dtype)

  def body(state, i_t):
    new, spikes = eqspike.neuron_step(state, i_t[None], gamma, stochastic=False)
    return new, (new.u[0], spikes[0])

  _, (u, spikes) = jax.lax.scan(body, state0, current)
  u = jnp.concatenate([jnp.zeros((1,), u.dtype), u])
  return u, jnp.diff(u), spikes


def _delivered(emitted: chex.Array) -> chex.Array:
  """Spikes by the step they are delivered at (one step after emission)."""
  return jnp.concatenate([jnp.zeros((1,), emitted.dtype), emitted[:-1]])


def first_spike(spikes: chex.Array) -> chex.Array:
  """Index of the first nonzero entry (``len(spikes)`` when there is none)."""
  t = jnp.arange(spikes.shape[0])
  return jnp.min(jnp.where(spikes > 0, t, spikes.shape[0]))


def synapse_change(protocol: Protocol, pre_time: chex.Numeric, beta: chex.Numeric
                   ) -> Tuple[chex.Array, chex.Array]:
  """``(t_post - t_pre, dW)`` of one run of the protocol with the presynaptic spike at ``pre_time``.

  ``pre_time`` is the step the (first) presynaptic spike is delivered at. For ``kind="free"`` the
  presynaptic neuron gets the same drive as the postsynaptic one, shifted so that its first spike
  is delivered at ``pre_time``. The postsynaptic neuron also receives the presynaptic spikes
  through ``weight``. Pairing is the default network's ``next_step``: ``du(t)`` of one neuron
  with the spike the other emits at the end of step ``t``; an input spike pairs with the step it
  drives.
  """
  p = protocol
  width = steps_to_spike(p.gamma, p.amplitude)
  dtype = jnp.result_type(float)
  if p.kind == "input":
    pre_delivered = (jnp.arange(p.num_steps) == pre_time).astype(dtype)
    du_pre = jnp.zeros((p.num_steps,), dtype)
    pre_paired = pre_delivered  # The input pairs S_x(t) with the du(t) it drives.
  else:
    # The first spike is emitted at the drive's last step and delivered one step later.
    pre_onset = pre_time - width
    _, du_pre, pre_emitted = run_neuron(
        drive_step(p.num_steps, pre_onset, width, p.amplitude).astype(dtype), p.gamma)
    pre_delivered = _delivered(pre_emitted)
    pre_paired = pre_emitted
  post_current = (drive_step(p.num_steps, p.post_onset, width, p.amplitude).astype(dtype)
                  + p.weight * pre_delivered)
  _, du_post, post_emitted = run_neuron(post_current, p.gamma)
  dw = jnp.sum(pre_paired * du_post)
  if p.kind == "free":
    dw += jnp.sum(du_pre * post_emitted)
  dt = first_spike(_delivered(post_emitted)) - first_spike(pre_delivered)
  return dt, dw / beta


def isolated_window(protocol: Protocol, beta: float, max_lag: int = 20
                    ) -> Tuple[np.ndarray, np.ndarray]:
  """``(dt [n], dW [n])``: the change of one synapse for every ``dt = t_post - t_pre`` in range.

  The postsynaptic timing is fixed; the presynaptic spike moves over the phase. Lags whose
  presynaptic spike would fall outside the phase (or, for ``kind="free"``, whose drive would
  start before it) are left out.
  """
  width = steps_to_spike(protocol.gamma, protocol.amplitude)
  t_post = protocol.post_onset + width  # Its first spike's delivery step.
  earliest = width if protocol.kind == "free" else 0
  pre_times = [t_post - lag for lag in range(-max_lag, max_lag + 1)
               if earliest <= t_post - lag < protocol.num_steps]
  change = jax.jit(jax.vmap(functools.partial(synapse_change, protocol), in_axes=(0, None)))
  dt, dw = change(jnp.asarray(pre_times), beta)
  return np.asarray(dt), np.asarray(dw)


# ================================================================================================
# In vivo: spike pairs in the nudged phases of a trained network.
# ================================================================================================


def pair_window(pre_paired: chex.Array, du_post: chex.Array, post_time: chex.Array,
                pre_time: chex.Array, max_lag: int, du_pre=None, post_paired=None
                ) -> Tuple[chex.Array, chex.Array]:
  """Summed rule change over spike pairs at every lag, and the number of pairs.

  Every presynaptic spike (of neuron i, delivered at t) and postsynaptic spike (of j, delivered at
  t + k) with ``|k| <= max_lag`` is a pair of synapse (i, j) at lag k; the pair is credited with
  the changes the rule made to synapse (i, j) at those two spikes: ``S_i du_j`` at the
  presynaptic one and, for a free presynaptic neuron, ``du_i S_j`` at the postsynaptic one. A
  spike in several pairs is credited in each.

  Args:
    pre_paired: ``[B, T, n]`` the presynaptic spikes as the rule pairs them with ``du_post``.
    du_post: ``[B, T, m]`` the postsynaptic state changes.
    post_time: ``[B, T, m]`` the postsynaptic spikes by delivery step.
    pre_time: ``[B, T, n]`` the presynaptic spikes by delivery step.
    max_lag: largest ``|t_post - t_pre|`` counted.
    du_pre, post_paired: ``[B, T, n]`` and ``[B, T, m]``, the second term (free presynaptic
      neurons only).

  Returns:
    ``(change [2 max_lag + 1], pairs [2 max_lag + 1])`` for lags ``-max_lag .. max_lag``, summed
    over the batch and every synapse.
  """
  chex.assert_rank([pre_paired, du_post, post_time, pre_time], 3)
  chex.assert_equal_shape([pre_paired, pre_time])
  chex.assert_equal_shape([du_post, post_time])
  num_steps = pre_time.shape[1]
  # Sums over one side of the synapse factor out: the change of (i, j) at i's spike is S_i du_j,
  # so summed over i it is n_pre(t) du_j(t).
  n_pre_paired = jnp.sum(pre_paired, -1)           # [B, T]
  n_pre = jnp.sum(pre_time, -1)
  n_post = jnp.sum(post_time, -1)
  if du_pre is not None:
    n_post_paired = jnp.sum(post_paired, -1)

  def shifted(a, k):  # a[:, t + k] at index t (zeros past the phase).
    pad = jnp.zeros_like(a[:, :abs(k)])
    if k >= 0:
      return jnp.concatenate([a[:, k:], pad], axis=1)
    return jnp.concatenate([pad, a[:, :num_steps + k]], axis=1)

  changes, pairs = [], []
  for k in range(-max_lag, max_lag + 1):
    post_k = shifted(post_time, k)   # Post spike at t + k, for a pre spike at t.
    change = jnp.sum(n_pre_paired * jnp.sum(du_post * post_k, -1))
    if du_pre is not None:
      pre_k = shifted(pre_time, -k)  # Pre spike at t - k, for a post spike at t.
      change += jnp.sum(n_post_paired * jnp.sum(du_pre * pre_k, -1))
    changes.append(change)
    pairs.append(jnp.sum(n_pre * shifted(n_post, k)))
  return jnp.stack(changes), jnp.stack(pairs)


def _delivery_times(trace_spikes: chex.Array, pairing: str) -> chex.Array:
  """A free layer's trace spikes by delivery step: ``next_step`` traces hold ``S(t + 1)``."""
  if pairing == "same_step":
    return trace_spikes
  zeros = jnp.zeros_like(trace_spikes[:, :1])
  return jnp.concatenate([zeros, trace_spikes[:, :-1]], axis=1)


def nudged_traces(params: Params, x: chex.Array, y: chex.Array, key: chex.PRNGKey,
                  dyn: eqspike.SpikingDynamics, betas: Tuple[float, ...]):
  """The nudged phases at each of ``betas`` from the same free phase and the same input trains.

  Returns ``(s_in_nudge [B, T, n_0], traces)``, one ``eqspike.Trace`` per beta: exactly what
  ``eqspike.eqspike_gradient`` runs (beta 0 continues the free phase, a control).
  """
  k_free, k_nudge = jax.random.split(key)
  s_in, s_free, _ = eqspike.free_phase_with_input(params, x, y, k_free, dyn)
  s_in_nudge = s_in[:, dyn.t_free:]
  _, traces = eqspike.nudged_phases(params, eqspike.drives_of(params, s_in_nudge, dyn), s_free,
                                    y, jnp.asarray(betas, x.dtype), dyn, k_nudge)
  return s_in_nudge, tuple(jax.tree.map(lambda a, i=i: a[i], traces)
                           for i in range(len(betas)))


def layer_window(s_in: chex.Array, trace: eqspike.Trace, layer: int, beta: float,
                 dyn: eqspike.SpikingDynamics, max_lag: int):
  """``pair_window`` of weight layer ``layer`` in one nudged phase, the change scaled by 1/beta."""
  post_paired = trace.spikes[layer]
  if layer == 0:
    pre_paired, pre_time, du_pre, post_paired_2 = s_in, s_in, None, None
  else:
    pre_paired = trace.spikes[layer - 1]
    pre_time = _delivery_times(pre_paired, dyn.pairing)
    du_pre, post_paired_2 = trace.du[layer - 1], post_paired
  post_time = _delivery_times(post_paired, dyn.pairing)
  change, pairs = pair_window(pre_paired, trace.du[layer], post_time, pre_time, max_lag,
                              du_pre, post_paired_2)
  return change / beta, pairs


def in_vivo_window(params: Params, x: chex.Array, y: chex.Array, key: chex.PRNGKey,
                   dyn: eqspike.SpikingDynamics, beta: float, max_lag: int = 10,
                   batch_size: int = 100) -> Dict[str, np.ndarray]:
  """The weight change per spike pair against ``t_post - t_pre`` in real nudged phases.

  Runs the nudged phases at ``+beta``, ``-beta`` and 0 (the free phase continued, a control)
  from the same free phase, over ``x`` in batches, and gathers ``layer_window`` for every weight
  layer. The change is the rule's, times ``1/beta`` of its phase (a chip's write with learning
  rate 1); the 0 phase is scaled by ``1/beta`` too, for comparison.

  Returns:
    ``lags [2 max_lag + 1]`` and, for every layer ``l`` and phase ``p`` in ``plus``, ``minus``,
    ``zero``: ``layer{l}/{p}/change`` (mean change per pair) and ``layer{l}/{p}/pairs``.
  """
  chex.assert_rank([x, y], 2)
  if not 0 < max_lag < dyn.t_nudge:
    raise ValueError(f"max_lag = {max_lag}: must be in 1 .. t_nudge - 1 = {dyn.t_nudge - 1}.")
  phases = {"plus": beta, "minus": -beta, "zero": 0.0}
  num_layers = len(params)

  @jax.jit
  def batch_sums(x_b, y_b, key_b):
    s_in, traces = nudged_traces(params, x_b, y_b, key_b, dyn, tuple(phases.values()))
    out = {}
    for (name, b), trace in zip(phases.items(), traces):
      scale = b if b else beta
      for l in range(num_layers):
        out[f"layer{l}/{name}/change"], out[f"layer{l}/{name}/pairs"] = layer_window(
            s_in, trace, l, scale, dyn, max_lag)
    return out

  totals = None
  for start in range(0, x.shape[0], batch_size):
    sums = batch_sums(x[start:start + batch_size], y[start:start + batch_size],
                      jax.random.fold_in(key, start))
    totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
  result = {"lags": np.arange(-max_lag, max_lag + 1)}
  for name in totals:
    if name.endswith("/change"):
      pairs = np.asarray(totals[name.replace("/change", "/pairs")])
      result[name] = np.asarray(totals[name]) / np.maximum(pairs, 1.0)
    else:
      result[name] = np.asarray(totals[name])
  return result


def symmetric_window(window: Dict[str, np.ndarray], layer: int) -> np.ndarray:
  """The change per pair that symmetric EP applies: both nudged phases' changes, per pair.

  Each phase's own window is dominated by spike-timing correlations that do not depend on beta
  (the sigma-delta rhythm, the self-coupling); they enter the +beta and -beta phases with
  opposite signs and cancel here, leaving what the nudge did.
  """
  plus, minus = (f"layer{layer}/{p}" for p in ("plus", "minus"))
  pairs = window[f"{plus}/pairs"] + window[f"{minus}/pairs"]
  total = (window[f"{plus}/change"] * window[f"{plus}/pairs"]
           + window[f"{minus}/change"] * window[f"{minus}/pairs"])
  return total / np.maximum(pairs, 1.0)


def stdp_sign_fraction(lags: np.ndarray, change: np.ndarray) -> float:
  """Fraction of lags whose change has the STDP sign: > 0 for ``dt >= 1``, < 0 for ``dt <= 0``.

  ``dt = 0`` (both spikes delivered at the same step) meets the postsynaptic state after its
  rise, so it belongs with the depression side, as in ``isolated_window``.
  """
  expected = np.where(lags >= 1, 1.0, -1.0)
  return float(np.mean(np.sign(change) == expected))


# ================================================================================================
# Both measurements of a trained run, as one JSON-ready report.
# ================================================================================================


def _listed(window: Dict[str, np.ndarray]) -> Dict[str, list]:
  return {k: np.asarray(v).tolist() for k, v in window.items()}


def report(workdir: str, num_examples: int = 2000, max_lag: int = 8,
           isolated_max_lag: int = 20, seed: int = 0) -> Dict:
  """The isolated-synapse windows and the in-vivo windows of the run in ``workdir``.

  In vivo, the windows are measured at the run's initial parameters (its first training step,
  where the output is far from the targets and the nudge moves it most) and at its last
  checkpoint, on the first ``num_examples`` training images.
  """
  from eqspike_jax import data as data_lib  # pylint: disable=g-import-not-at-top
  from eqspike_jax import train  # pylint: disable=g-import-not-at-top
  config, params, step = train.load_trained(workdir)
  if config.model != "eqspike":
    raise ValueError(f"{workdir} holds a {config.model!r} run; the STDP measurements need an "
                     f"EqSpike run (config.model = 'eqspike').")
  dyn = eqspike.dynamics_from_config(config)
  algorithm, optimizer = train.make_algorithm(config, total_steps=1)
  initial = train.init_state(config, algorithm, optimizer).params
  split = data_lib.load_split(config.dataset, "train", config.data_dir or None, config.download,
                              size=num_examples)
  x = jnp.asarray(split.images)
  y = jax.nn.one_hot(split.labels, config.layer_sizes[-1], dtype=x.dtype)
  key = jax.random.PRNGKey(seed)

  out = {"workdir": workdir, "config_name": config.name, "step": step,
         "measured_at_git_sha": train.git_sha(), "seed": seed, "beta": config.beta,
         "gamma": config.gamma, "pairing": config.pairing, "num_examples": int(x.shape[0]),
         "isolated": {}, "in_vivo": {}}
  for kind in KINDS:
    protocol = Protocol(gamma=config.gamma, kind=kind)
    for sign, name in ((1.0, "plus"), (-1.0, "minus")):
      dt, dw = isolated_window(protocol, sign * config.beta, isolated_max_lag)
      out["isolated"][f"{kind}/{name}"] = {"dt": dt.tolist(), "dw": dw.tolist()}
    out["isolated"][f"{kind}/protocol"] = dataclasses.asdict(protocol)
  for name, p, at_step in (("initial", initial, 0), ("trained", params, step)):
    window = in_vivo_window(p, x, y, key, dyn, config.beta, max_lag)
    entry = {"step": at_step, **_listed(window)}
    for l in range(len(p)):
      net = symmetric_window(window, l)
      entry[f"layer{l}/symmetric/change"] = net.tolist()
      entry[f"layer{l}/symmetric/stdp_sign_fraction"] = stdp_sign_fraction(window["lags"], net)
    out["in_vivo"][name] = entry
  return out
