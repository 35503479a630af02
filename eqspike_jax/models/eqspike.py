"""EqSpike: a spiking network that learns by spike-driven, local EP (EQSPIKE.md section 3).

The dynamics are ``spiking``'s, the rule ``spike_rule``'s and the counts ``events``'; this module
runs the phases of a training step and hands the rule's contrast to the EP core.

* One free phase (``free_phase``) serves training, prediction and the measurements: it encodes
  the input, runs the network from rest and keeps the encoder state, so the nudged phases
  continue the same input trains.
* The rule pairs spikes with state changes that are correlated even at equilibrium and at
  beta = 0 (a spike at t drives the state at t + 1). That bias is the same in every phase, so it
  cancels in symmetric nudging (+beta minus -beta); a one-sided phase subtracts the same
  statistic gathered over the last ``t_nudge`` steps of the free phase (``free_contrast``).

The fixed point of the rates is ``u = clip(W u + b)``: the rate network of ``rate_ep`` with the
hard sigmoid, which is what the spiking network is tested against.
"""

import dataclasses
import functools
from typing import Callable, Optional, Tuple

import chex
import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from eqspike_jax import ep_core
from eqspike_jax import events as events_lib
from eqspike_jax import layers
from eqspike_jax import network
from eqspike_jax import spike_rule
from eqspike_jax import spiking
from eqspike_jax.layers import Architecture
from eqspike_jax.network import Params
from eqspike_jax.spiking import SpikingDynamics, Trace

READOUTS = ("state", "spike_count")


@dataclasses.dataclass(frozen=True)
class Readout:
  """What the prediction is the argmax of: ``u_o``, or the output's spike rate at the end."""
  kind: str = "state"
  steps: int = 20  # "spike_count": steps at the end of the free phase.

  def __call__(self, free: "FreePhase") -> chex.Array:
    if self.kind == "spike_count":
      return jnp.mean(free.trace.emitted[-1][:, -self.steps:], axis=1)
    return free.state[-1].u


@flax.struct.dataclass
class FreePhase:
  """The free phase of a batch, batch-leading: what every later phase and metric reads."""
  s_in: chex.Array                 # [B, t, n_0] input trains (t = t_free, or the kept steps).
  encoder: chex.Array              # [B, n_0] input encoder state at its end.
  state: spiking.NetworkState      # The free end state.
  trace: Trace                     # [B, t, n] per layer.
  # A streamed free phase traces only its last steps; these are the counts of the steps before.
  head_events: Optional[events_lib.PhaseEvents] = None


def free_phase(arch: Architecture, params: Params, x: chex.Array, dyn: SpikingDynamics,
               key: Optional[chex.PRNGKey], keep: Optional[int] = None) -> FreePhase:
  """The free phase of a batch ``x [B, n_0]`` from rest (the one free phase of this model).

  ``keep``: trace only the last ``keep`` steps and stream the ones before (``spiking.
  streamed_run``), so the memory of a training step does not grow with ``t_free``.
  """
  chex.assert_rank(x, 2)
  k_in, k_net = _phase_keys(key, dyn)
  start = 0 if keep is None else max(dyn.t_free - keep, 0)
  state0 = spiking.batched_rest_state(arch, x.shape[0], x.dtype)
  e0, head = None, None
  if start:
    state0, e0, counts = spiking.batched_streamed_run(arch, params, x, dyn, k_in, k_net, start)
    head = events_lib.events_from_counts(arch, counts, start)
  encoder, s_in = spiking.input_trains(x, dyn.t_free - start, dyn, k_in, e0, start=start)
  y_unused = jnp.zeros((x.shape[0], arch[-1].n_out), x.dtype)
  state, trace = spiking.batched_phase(arch, params, spiking.drives_of(arch, params, s_in, dyn),
                                       state0, y_unused, None, dyn, k_net, start=start)
  return FreePhase(s_in=s_in, encoder=encoder, state=state, trace=trace, head_events=head)


def _phase_keys(key, dyn):
  """The input encoder's stream and the network's (both continue into the nudged phases)."""
  if not dyn.stochastic:
    return None, None
  k_in, k_net = jax.random.split(key)
  return k_in, k_net


def nudged_input(x: chex.Array, free: FreePhase, dyn: SpikingDynamics, key) -> chex.Array:
  """The input trains of the nudged phases ``[B, t_nudge, n_0]``: the free phase's, continued."""
  k_in, _ = _phase_keys(key, dyn)
  return spiking.input_trains(x, dyn.t_nudge, dyn, k_in, free.encoder, start=dyn.t_free)[1]


def nudged_phases(arch: Architecture, params: Params, drives: chex.Array, free: FreePhase,
                  y: chex.Array, betas: chex.Array, dyn: SpikingDynamics,
                  key: Optional[chex.PRNGKey]) -> Tuple[spiking.NetworkState, Trace]:
  """The nudged phases at each of ``betas`` side by side, from the free end state.

  They continue the same input drives and (stochastic spikes) draw the same random stream, so
  they differ only by the nudge. Returns ``(states, traces)`` with a leading axis over ``betas``.
  """
  _, k_net = _phase_keys(key, dyn)
  phase = functools.partial(spiking.batched_phase, arch, params, drives, free.state, y,
                            dyn=dyn, key=k_net, start=dyn.t_free)
  if betas.shape[0] == 1:  # One phase: no vmap, so its arithmetic is a plain phase's.
    return jax.tree.map(lambda a: a[None], phase(betas[0]))
  return ep_core.vmap_over_betas(phase, betas)


def free_tail(free: FreePhase, dyn: SpikingDynamics) -> Tuple[chex.Array, Trace]:
  """The last ``t_nudge`` free steps: the reference statistic of one-sided nudging."""
  kept = free.s_in.shape[1]
  return free.s_in[:, kept - dyn.t_nudge:], spiking.slice_time(free.trace, kept - dyn.t_nudge,
                                                               kept)


def residual(trace: Trace) -> chex.Array:
  """How far the free phase is from settled (spiking states never settle exactly)."""
  return jnp.mean(jnp.max(jnp.concatenate([jnp.abs(d[:, -1]) for d in trace.du], -1), -1))


@dataclasses.dataclass(frozen=True)
class Model:
  """Everything static about one EqSpike configuration."""
  arch: Architecture
  dyn: SpikingDynamics
  rule: spike_rule.Rule
  nudging: ep_core.Nudging
  readout: Readout
  free_contrast: bool = True
  stream: bool = False  # Trace only the free phase's last steps (memory constant in t_free).

  def free(self, params, x, key) -> FreePhase:
    """This model's free phase: traced in full, or streamed up to the steps its metrics read."""
    if not self.stream or self.graded_input:  # Graded events are counted from the first step.
      return free_phase(self.arch, params, x, self.dyn, key)
    keep = max(self.dyn.t_nudge if self.tail_contrast else 1,
               self.readout.steps if self.readout.kind == "spike_count" else 1)
    return free_phase(self.arch, params, x, self.dyn, key, keep=keep)

  @property
  def tail_contrast(self) -> bool:
    """One-sided nudging contrasted against the free phase's tail."""
    return not self.nudging.symmetric and self.free_contrast

  @property
  def graded_input(self) -> bool:
    """Pixels given as current are counted as graded, delta-coded events (``events``)."""
    return self.dyn.input_mode == "current"

  def step_metrics(self, params, y, free: FreePhase, s_in_nudge, nudged: Trace) -> dict:
    """Loss and accuracy of the readout, the residual, and the typed event counts."""
    del params
    free_in, nudge_in, written_in = free.s_in, s_in_nudge, self.rule.paired_input
    if self.graded_input:
      free_in = events_lib.graded_input_events(free.s_in)
      nudge_in = events_lib.graded_input_events(s_in_nudge, free.s_in[:, -1])
      written_in = events_lib.written_at_the_end
    free_events = events_lib.phase_events(self.arch, free_in, free.trace.emitted)
    if free.head_events is not None:
      free_events = free_events + free.head_events
    if self.tail_contrast:  # The contrast's updates are written during the free-phase tail.
      tail_in, tail = free_tail(free, self.dyn)
      written = events_lib.phase_events(self.arch, tail_in, tail.emitted, self.rule.paired(tail),
                                        written_in(tail_in))
      free_events = free_events.replace(synaptic_updates=written.synaptic_updates)
    per_phase = [events_lib.phase_events(self.arch, nudge_in, ep_core.phase(nudged, i).emitted,
                                         self.rule.paired(ep_core.phase(nudged, i)),
                                         written_in(s_in_nudge))
                 for i in range(self.nudging.num_phases)]
    return {**network.classification_metrics(self.readout(free), y),
            "residual": residual(free.trace),
            "activity": network.layer_activity([layer.u for layer in free.state]),
            "events": events_lib.StepEvents(free=free_events,
                                            nudged=functools.reduce(lambda a, b: a + b,
                                                                    per_phase))}

  def contrast(self, params, s_in_nudge, nudged: Trace, tail) -> Params:
    """The rule's contrast of the phases: +beta less -beta, or nudged less the free tail."""
    if self.nudging.symmetric:
      return self.rule.sums(self.arch, params, s_in_nudge, ep_core.phase(nudged, 0), None,
                            ep_core.phase(nudged, 1))
    if self.tail_contrast:
      return self.rule.sums(self.arch, params, s_in_nudge, ep_core.phase(nudged, 0), *tail)
    return self.rule.sums(self.arch, params, s_in_nudge, ep_core.phase(nudged, 0))

  def estimate(self, params, x, y, betas, key) -> Tuple[Params, dict]:
    """Free phase, nudged phase(s) and the rule summed over them (an ``ep_core.EstimateFn``)."""
    free = self.free(params, x, key)
    s_in_nudge = nudged_input(x, free, self.dyn, key)
    drives = spiking.drives_of(self.arch, params, s_in_nudge, self.dyn)
    _, nudged = nudged_phases(self.arch, params, drives, free, y, betas, self.dyn, key)
    tail = free_tail(free, self.dyn) if self.tail_contrast else None
    return (self.contrast(params, s_in_nudge, nudged, tail),
            self.step_metrics(params, y, free, s_in_nudge, nudged))

  def predict(self, params, x, key) -> chex.Array:
    return self.readout(self.free(params, x, key))


def _time_major(a):
  return jnp.swapaxes(a, 0, 1)


def online_phases(model: Model) -> ep_core.OnlinePhases:
  """The rule applied at every nudged step, as a chip would: the dynamics see the moving weights.

  Symmetric nudging runs the +beta and -beta copies side by side on the shared, moving weights
  and applies their difference at each step; one-sided nudging with ``free_contrast`` pairs
  nudged step k with free-tail step k (recorded at the free weights). Each step's spikes come
  from the same per-example, per-step keys as the accumulated mode's.
  """
  arch, dyn = model.arch, model.dyn

  def begin(params, x, y, betas, key):
    del y
    free = model.free(params, x, key)
    s_in_nudge = nudged_input(x, free, dyn, key)
    states = jax.tree.map(lambda a: jnp.stack([a] * betas.shape[0]), free.state)
    xs = {"s_in": _time_major(s_in_nudge)}
    if dyn.stochastic:
      ex_keys = spiking.example_keys(_phase_keys(key, dyn)[1], x.shape[0], dyn)
      xs["keys"] = _time_major(jax.vmap(lambda k: spiking.step_keys(
          k, dyn.t_free, dyn.t_nudge))(ex_keys))
    if model.tail_contrast:
      tail_in, tail = free_tail(free, dyn)
      xs["tail_in"], xs["tail"] = _time_major(tail_in), jax.tree.map(_time_major, tail)
    return states, xs, (free, s_in_nudge)

  def step(params, states, xs_t, y, betas):
    drive_t = arch[0].forward(params[0], xs_t["s_in"])  # The weights moved at the last step.
    keys_t = xs_t.get("keys")

    def one_phase(state, beta):
      fn = lambda d, s, t, k: spiking.network_step(arch, params, d, s, t, beta, dyn, k)
      return jax.vmap(fn, in_axes=(0, 0, 0, 0 if dyn.stochastic else None))(
          drive_t, state, y, keys_t)

    states, obs = jax.vmap(one_phase)(states, betas)
    one_step = jax.tree.map(lambda a: a[:, :, None], obs)  # [phases, B, 1, n]: a trace.
    tail = ((xs_t["tail_in"][:, None], jax.tree.map(lambda a: a[:, None], xs_t["tail"]))
            if model.tail_contrast else None)
    return states, model.contrast(params, xs_t["s_in"][:, None], one_step, tail), obs

  def metrics(params, y, aux, obs):
    free, s_in_nudge = aux
    nudged = jax.tree.map(lambda a: jnp.moveaxis(a, 0, 2), obs)  # [phases, B, T, n].
    return model.step_metrics(params, y, free, s_in_nudge, nudged)

  return ep_core.OnlinePhases(begin=begin, step=step, metrics=metrics)


# ================================================================================================
# Configuration.
# ================================================================================================


def dynamics_from_config(config: ml_collections.ConfigDict) -> SpikingDynamics:
  s = config.eqspike
  return SpikingDynamics(gamma=s.gamma, t_free=config.t_free, t_nudge=config.t_nudge,
                         spike_mode=s.spike_mode, input_mode=s.input_mode,
                         unroll=config.scan_unroll, state_bits=s.state_bits)


def model_from_config(config: ml_collections.ConfigDict) -> Model:
  s = config.eqspike
  return Model(arch=layers.from_config(config), dyn=dynamics_from_config(config),
               rule=spike_rule.Rule(pairing=s.pairing, debias=s.debias, gamma=s.gamma,
                                    window=s.window),
               nudging=ep_core.Nudging(config.nudging, config.beta),
               readout=Readout(s.readout, s.readout_steps), free_contrast=s.free_contrast,
               stream=s.stream_free_phase)


def validate(config: ml_collections.ConfigDict, fail: Callable) -> None:
  """Checks ``config.eqspike`` and its combinations with the shared fields."""
  s = config.eqspike
  if not 0.0 < s.gamma <= 1.0:
    fail("eqspike.gamma", s.gamma, "gamma = dt / tau must be in (0, 1].")
  for field, choices in (("spike_mode", spiking.SPIKE_MODES), ("input_mode", spiking.INPUT_MODES),
                         ("readout", READOUTS), ("pairing", spike_rule.PAIRINGS)):
    if s[field] not in choices:
      fail(f"eqspike.{field}", s[field], f"must be one of {list(choices)}.")
  if s.debias and s.pairing != "same_step":
    fail("eqspike.debias", s.debias, "subtracts the self-coupling of same-step pairing; "
         "next-step pairing has none. Set eqspike.pairing='same_step' or eqspike.debias=False.")
  if not isinstance(s.window, int) or isinstance(s.window, bool) or s.window < 0:
    fail("eqspike.window", s.window, "must be a non-negative integer (0: the whole phase).")
  if s.window and s.pairing != "state":
    fail("eqspike.window", s.window, "only the 'state' pairing learns over a window; set "
         "eqspike.pairing='state' or eqspike.window=0.")
  if not isinstance(s.state_bits, int) or isinstance(s.state_bits, bool) or not (
      s.state_bits == 0 or 2 <= s.state_bits <= 16):
    fail("eqspike.state_bits", s.state_bits, "must be 0 (float states) or from 2 to 16 bits.")
  if s.pairing == "state" and config.update_mode == "online":
    fail("eqspike.pairing", s.pairing, "the 'state' pairing averages over the nudged phase, "
         "which an online update does not see; use update_mode='accumulated'.")
  if s.window > config.t_nudge:
    fail("eqspike.window", s.window, f"must be <= t_nudge = {config.t_nudge}.")
  if (not isinstance(s.readout_steps, int) or isinstance(s.readout_steps, bool)
      or s.readout_steps < 1):
    fail("eqspike.readout_steps", s.readout_steps, "must be a positive integer.")
  if s.readout == "spike_count" and s.readout_steps > config.t_free:
    fail("eqspike.readout_steps", s.readout_steps, f"counts spikes over the end of the free "
         f"phase, so it must be <= t_free = {config.t_free}.")
  if s.stream_free_phase and s.input_mode == "current":
    fail("eqspike.stream_free_phase", s.stream_free_phase, "a streamed free phase counts its "
         "first steps' input as spike trains, not as the graded events of current input; set "
         "eqspike.stream_free_phase=False or eqspike.input_mode='spikes'.")
  nudging = ep_core.Nudging(config.nudging, config.beta)
  if not nudging.symmetric and s.free_contrast and config.t_nudge > config.t_free:
    fail("t_nudge", config.t_nudge, f"the free-phase contrast of one-sided nudging is gathered "
         f"over the last t_nudge steps of the free phase, so t_nudge must be <= t_free = "
         f"{config.t_free}.")


def make_algorithm(config: ml_collections.ConfigDict,
                   optimizer: optax.GradientTransformation) -> ep_core.Algorithm:
  model = model_from_config(config)
  update = ep_core.make_update(config.update_mode, model.nudging, optimizer,
                               estimate_fn=model.estimate, online=online_phases(model),
                               unroll=model.dyn.unroll)
  return ep_core.Algorithm(
      init_params=lambda key: layers.init_params(model.arch, key, config.init, config.init_scale),
      update=update, predict=model.predict)
