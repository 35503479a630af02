"""Backpropagation through time with a surrogate spike derivative, on the EqSpike network.

A baseline, not a local rule: the same neurons, encoder, input coding, symmetric weights,
readout and cost as EqSpike (``models/eqspike.free_phase``), trained by ``jax.grad`` through
the free phase's ``lax.scan``, with each spike's derivative replaced by a surrogate
(``surrogate.py``). It uses what EP may not: the transposed Jacobians of every step, stored for
the whole phase, which is why its memory grows with the number of steps and why a chip would
need an off-chip backward pass (or a separate backward network) to run it. The EP fields of the
config (``beta``, ``nudging``, ``t_nudge``) do not apply to it.
"""

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections
import optax

from eqspike_jax import ep_core
from eqspike_jax import events as events_lib
from eqspike_jax import layers
from eqspike_jax import network
from eqspike_jax import spiking
from eqspike_jax import surrogate as surrogate_lib
from eqspike_jax.models import eqspike


def dynamics_from_config(config: ml_collections.ConfigDict) -> spiking.SpikingDynamics:
  s = config.bptt
  return spiking.SpikingDynamics(
      gamma=s.gamma, t_free=config.t_free, t_nudge=config.t_nudge, spike_mode=s.spike_mode,
      input_mode=s.input_mode, unroll=config.scan_unroll,
      surrogate=surrogate_lib.Surrogate(s.surrogate, float(s.surrogate_slope)))


def loss_and_metrics(arch, dyn, readout, params, x, y, key):
  """The batch's cost of the readout after the free phase, and the step's metrics."""
  free = eqspike.free_phase(arch, params, x, dyn, key)
  out = readout(free)
  metrics = {**network.classification_metrics(out, y), "residual": eqspike.residual(free.trace),
             "activity": network.layer_activity([layer.u for layer in free.state])}
  s_in = (events_lib.graded_input_events(free.s_in) if dyn.input_mode == "current"
          else free.s_in)  # Counted as EqSpike counts its free phase.
  counts = jax.lax.stop_gradient(events_lib.phase_events(arch, s_in, free.trace.emitted))
  # No nudged phase and no weight writes on a chip: BPTT's updates are computed off the network.
  metrics["events"] = events_lib.StepEvents(free=counts,
                                            nudged=jax.tree.map(jnp.zeros_like, counts))
  return metrics["loss"], metrics


def make_update(arch, dyn, readout, optimizer: optax.GradientTransformation) -> Callable:
  grad_fn = jax.grad(functools.partial(loss_and_metrics, arch, dyn, readout), has_aux=True)

  def update(params, opt_state, x, y, key, axis_name=None):
    if axis_name is not None:
      key = jax.random.fold_in(key, jax.lax.axis_index(axis_name))
    grads, metrics = grad_fn(params, x, y, key)
    if axis_name is not None:
      grads, metrics = jax.lax.pmean((grads, metrics), axis_name)
    params, opt_state = ep_core.apply_gradient(optimizer, params, opt_state, grads)
    return params, opt_state, {**metrics, **ep_core.gradient_norms(grads)}

  return update


def validate(config: ml_collections.ConfigDict, fail: Callable) -> None:
  s = config.bptt
  if not 0.0 < s.gamma <= 1.0:
    fail("bptt.gamma", s.gamma, "gamma = dt / tau must be in (0, 1].")
  for field, choices in (("spike_mode", spiking.SPIKE_MODES), ("input_mode", spiking.INPUT_MODES),
                         ("readout", eqspike.READOUTS), ("surrogate", surrogate_lib.KINDS)):
    if s[field] not in choices:
      fail(f"bptt.{field}", s[field], f"must be one of {list(choices)}.")
  if not s.surrogate_slope > 0:
    fail("bptt.surrogate_slope", s.surrogate_slope, "must be > 0.")
  if (not isinstance(s.readout_steps, int) or isinstance(s.readout_steps, bool)
      or not 1 <= s.readout_steps <= config.t_free):
    fail("bptt.readout_steps", s.readout_steps, f"must be an integer in [1, t_free = "
         f"{config.t_free}].")
  if config.update_mode != "accumulated":
    fail("update_mode", config.update_mode, "BPTT computes one gradient per batch; use "
         "update_mode='accumulated'.")


def make_algorithm(config: ml_collections.ConfigDict,
                   optimizer: optax.GradientTransformation) -> ep_core.Algorithm:
  arch = layers.from_config(config)
  dyn = dynamics_from_config(config)
  readout = eqspike.Readout(config.bptt.readout, config.bptt.readout_steps)
  return ep_core.Algorithm(
      init_params=lambda key: layers.init_params(arch, key, config.init, config.init_scale),
      update=make_update(arch, dyn, readout, optimizer),
      predict=lambda params, x, key: readout(eqspike.free_phase(arch, params, x, dyn, key)))
