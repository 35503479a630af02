"""Spike-timing dependence of EqSpike's weight updates (EQSPIKE.md section 5).

The rule changes a synapse only when one of its two neurons spikes, by the change of the *other*
neuron's state: ``dW = (1/beta) sum_t [S_pre du_post(t) + du_pre(t) S_post]`` (no second term for
an input presynaptic neuron), with the spikes the rule pairs with ``du(t)`` (``Rule.paired``).
Two measurements of how that change depends on the timing of pre- and postsynaptic spikes:

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

Spike times are the steps the spikes are delivered at, whatever the rule pairs: an input spike
``S_x(t)`` drives step ``t``; a free neuron's spike emitted at the end of step ``t`` is received
at ``t + 1`` (timing reads ``Trace.received``, the rule ``Rule.paired``).

For a synapse between two free neurons the rule is symmetric under exchanging them (the weights
are symmetric), so its full window is the pre-triggered window plus its mirror image; with the two
neurons driven alike it is even in ``t_post - t_pre``. ``isolated_window(kind="free")`` shows it.
"""

import dataclasses
import functools
from typing import Dict, Sequence, Tuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from eqspike_jax import data as data_lib
from eqspike_jax import ep_core
from eqspike_jax import registry
from eqspike_jax import spike_rule
from eqspike_jax import spiking
from eqspike_jax import workdir as workdir_lib
from eqspike_jax.analysis import reports
from eqspike_jax.models import eqspike
from eqspike_jax.network import Params
from eqspike_jax.spiking import Trace

KINDS = ("input", "free")
# The isolated synapse follows the default network's rule: next-step pairing, du(t) with S(t+1).
ISOLATED_RULE = spike_rule.Rule(pairing="next_step")


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
  state0 = spiking.rest_state(1, current.dtype)

  def body(state, i_t):
    new, spikes = spiking.neuron_step(state, i_t[None], gamma, stochastic=False)
    return new, (new.u[0], spikes[0])

  _, (u, spikes) = jax.lax.scan(body, state0, current)
  u = jnp.concatenate([jnp.zeros((1,), u.dtype), u])
  return u, jnp.diff(u), spikes


def neuron_trace(current: chex.Array, gamma: float) -> Trace:
  """``run_neuron`` as a one-layer ``spiking.Trace`` (``[T]`` arrays), for the rule to pair."""
  u, du, emitted = run_neuron(current, gamma)
  received = jnp.concatenate([jnp.zeros((1,), emitted.dtype), emitted[:-1]])  # None at rest.
  return Trace(received=(received,), emitted=(emitted,), u=(u[:-1],), du=(du,))


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
  through ``weight``. The rule pairs each neuron's ``du(t)`` with the other's spikes as
  ``ISOLATED_RULE`` does; an input spike pairs with the step it drives.
  """
  p = protocol
  width = steps_to_spike(p.gamma, p.amplitude)
  dtype = jnp.result_type(float)
  if p.kind == "input":
    pre_received = (jnp.arange(p.num_steps) == pre_time).astype(dtype)
    pre_paired = pre_received
  else:
    # The first spike is emitted at the drive's last step and delivered one step later.
    pre = neuron_trace(drive_step(p.num_steps, pre_time - width, width, p.amplitude
                                  ).astype(dtype), p.gamma)
    pre_received, pre_paired = pre.received[0], ISOLATED_RULE.paired(pre)[0]
  post_current = (drive_step(p.num_steps, p.post_onset, width, p.amplitude).astype(dtype)
                  + p.weight * pre_received)
  post = neuron_trace(post_current, p.gamma)
  dw = jnp.sum(pre_paired * post.du[0])
  if p.kind == "free":
    dw += jnp.sum(pre.du[0] * ISOLATED_RULE.paired(post)[0])
  dt = first_spike(post.received[0]) - first_spike(pre_received)
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


def nudged_traces(model: eqspike.Model, params: Params, x: chex.Array, y: chex.Array,
                  key: chex.PRNGKey, betas: Sequence[float]) -> Tuple[chex.Array, Tuple]:
  """The nudged phases at each of ``betas`` from the same free phase and the same input trains.

  Returns ``(s_in_nudge [B, T, n_0], traces)``, one ``spiking.Trace`` per beta: the phases
  ``model.estimate`` runs with this key (beta 0 continues the free phase, a control).
  """
  dyn = model.dyn
  free = eqspike.free_phase(model.arch, params, x, dyn, key)
  s_in_nudge = eqspike.nudged_input(x, free, dyn, key)
  drives = spiking.drives_of(model.arch, params, s_in_nudge, dyn)
  _, traces = eqspike.nudged_phases(model.arch, params, drives, free, y,
                                    jnp.asarray(betas, x.dtype), dyn, key)
  return s_in_nudge, tuple(ep_core.phase(traces, i) for i in range(len(betas)))


def layer_window(rule: spike_rule.Rule, s_in: chex.Array, trace: Trace, layer: int,
                 beta: float, max_lag: int) -> Tuple[chex.Array, chex.Array]:
  """``pair_window`` of weight layer ``layer`` in one nudged phase, the change scaled by 1/beta.

  The change is the rule's (its paired spikes, ``rule.paired``); the lags are the spikes'
  delivery times (``trace.received``; the input train drives the step it is indexed by).
  """
  paired = rule.paired(trace)
  post_paired, post_time = paired[layer], trace.received[layer]
  if layer == 0:
    pre_paired, pre_time, du_pre, post_paired_2 = s_in, s_in, None, None
  else:
    pre_paired, pre_time = paired[layer - 1], trace.received[layer - 1]
    du_pre, post_paired_2 = trace.du[layer - 1], post_paired
  change, pairs = pair_window(pre_paired, trace.du[layer], post_time, pre_time, max_lag,
                              du_pre, post_paired_2)
  return change / beta, pairs


def in_vivo_window(model: eqspike.Model, params: Params, x: chex.Array, y: chex.Array,
                   key: chex.PRNGKey, max_lag: int = 10, batch_size: int = 100
                   ) -> Dict[str, np.ndarray]:
  """The weight change per spike pair against ``t_post - t_pre`` in real nudged phases.

  Runs the nudged phases at ``+beta``, ``-beta`` (``model.nudging.beta``) and 0 (the free phase
  continued, a control) from one free phase, over ``x`` in batches, and gathers ``layer_window``
  of every weight layer: ``model.rule``'s change times ``1/beta`` of its phase (a chip's write
  with learning rate 1; the 0 phase at ``1/beta`` too, for comparison).

  Returns:
    ``lags [2 max_lag + 1]`` and, for every layer ``l`` and phase ``p`` in ``plus``, ``minus``,
    ``zero``: ``layer{l}/{p}/change`` (mean change per pair) and ``layer{l}/{p}/pairs``.
  """
  chex.assert_rank([x, y], 2)
  beta, t_nudge = model.nudging.beta, model.dyn.t_nudge
  if not 0 < max_lag < t_nudge:
    raise ValueError(f"max_lag = {max_lag}: must be in 1 .. t_nudge - 1 = {t_nudge - 1}.")
  phases = {"plus": beta, "minus": -beta, "zero": 0.0}

  @jax.jit
  def batch_sums(params, x_b, y_b, key_b):
    s_in, traces = nudged_traces(model, params, x_b, y_b, key_b, tuple(phases.values()))
    out = {}
    for (name, b), trace in zip(phases.items(), traces):
      for l in range(len(params)):
        out[f"layer{l}/{name}/change"], out[f"layer{l}/{name}/pairs"] = layer_window(
            model.rule, s_in, trace, l, b if b else beta, max_lag)
    return out

  totals = None
  for start in range(0, x.shape[0], batch_size):
    sums = batch_sums(params, jnp.asarray(x[start:start + batch_size]),
                      jnp.asarray(y[start:start + batch_size]), jax.random.fold_in(key, start))
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


def isolated_report(gamma: float, beta: float, max_lag: int) -> Dict:
  """The isolated windows of both kinds of synapse at ``+beta`` and ``-beta``."""
  out = {}
  for kind in KINDS:
    protocol = Protocol(gamma=gamma, kind=kind)
    for sign, name in ((1.0, "plus"), (-1.0, "minus")):
      dt, dw = isolated_window(protocol, sign * beta, max_lag)
      out[f"{kind}/{name}"] = {"dt": dt.tolist(), "dw": dw.tolist()}
    out[f"{kind}/protocol"] = dataclasses.asdict(protocol)
  return out


def in_vivo_entry(model: eqspike.Model, params: Params, x, y, key, max_lag: int) -> Dict:
  """``in_vivo_window`` of ``params`` with each layer's symmetric window and its STDP sign."""
  window = in_vivo_window(model, params, x, y, key, max_lag)
  entry = {k: np.asarray(v).tolist() for k, v in window.items()}
  for l in range(len(params)):
    net = symmetric_window(window, l)
    entry[f"layer{l}/symmetric/change"] = net.tolist()
    entry[f"layer{l}/symmetric/stdp_sign_fraction"] = stdp_sign_fraction(window["lags"], net)
  return entry


def report(workdir: str, num_examples: int = 2000, max_lag: int = 8,
           isolated_max_lag: int = 20, seed: int = 0) -> Dict:
  """The isolated-synapse windows and the in-vivo windows of the run in ``workdir``.

  In vivo, the windows are measured at the run's initial parameters (``registry.init_params``:
  its first training step, where the output is far from the targets and the nudge moves it
  most) and at its last checkpoint, on the first ``num_examples`` training images. Reads the
  workdir only.
  """
  config = workdir_lib.load_config(workdir)
  reports.require_eqspike_run(config, workdir, "the STDP measurements need an EqSpike run "
                              "(config.model = 'eqspike').")
  config, params, step = workdir_lib.load_trained(workdir)
  model = eqspike.model_from_config(config)
  split = data_lib.load_split(config.dataset, "train", config.data_dir or None, config.download,
                              size=num_examples)
  x = jnp.asarray(split.images)
  y = jax.nn.one_hot(split.labels, config.layer_sizes[-1], dtype=x.dtype)
  key = jax.random.PRNGKey(seed)
  out = {"workdir": workdir, "config_name": config.name, "step": step,
         "measured_at_git_sha": workdir_lib.git_sha(), "seed": seed,
         "beta": model.nudging.beta, "gamma": model.dyn.gamma, "pairing": model.rule.pairing,
         "num_examples": int(x.shape[0]),
         "isolated": isolated_report(model.dyn.gamma, model.nudging.beta, isolated_max_lag),
         "in_vivo": {}}
  for name, p, at_step in (("initial", registry.init_params(config), 0),
                           ("trained", params, step)):
    out["in_vivo"][name] = {"step": at_step, **in_vivo_entry(model, p, x, y, key, max_lag)}
  return out
