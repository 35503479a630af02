"""Spikes and states of every layer over time for one example: what the raster plots draw.

``record`` runs the phases of one EqSpike training step on one example (a batch of 1) with the
model's own phase functions (``eqspike.free_phase``, ``nudged_input``, ``nudged_phases``): the
free phase from rest, then two nudged phases at ``+beta`` and ``-beta`` that both start from the
free end state and continue the same input trains, as ``eqspike.Model.estimate`` does.

Time convention (``spiking.network_step``): step ``t`` integrates ``u(t) -> u(t+1)`` driven by the
spikes ``S(t)`` it received, then emits ``S(t+1)`` from ``u(t+1)``. A phase of ``T`` steps that
starts at time ``t0`` records

* ``u``: the states at times ``t0 .. t0 + T``, ``[T + 1, n_l]`` per free layer (its first row is
  the state the phase starts from, so consecutive phases join up);
* ``spikes``: the spikes emitted at times ``t0 + 1 .. t0 + T`` (``Trace.emitted``), ``[T, n_l]``,
  whatever the rule pairs;

and the input trains ``S_x(t)`` of times ``0 .. t_free + t_nudge - 1`` (the input drives the step
that starts at ``t``) are shared by all phases.
"""

from typing import Dict, Tuple

import chex
import jax.numpy as jnp

from eqspike_jax import ep_core
from eqspike_jax import spiking
from eqspike_jax.models import eqspike
from eqspike_jax.network import Params

PHASES = ("free", "nudged_plus", "nudged_minus")


def _phase_record(trace: spiking.Trace, end: spiking.NetworkState) -> Dict[str, Tuple]:
  """``u`` (``[T + 1, n]``) and emitted ``spikes`` (``[T, n]``) per layer, batch of 1 dropped."""
  # The states the steps started from, then the end state: exact, where u(t) + du(t) rounds.
  u = tuple(jnp.concatenate([t_u, s.u[:, None]], axis=1)[0] for t_u, s in zip(trace.u, end))
  return {"u": u, "spikes": tuple(s[0] for s in trace.emitted)}


def record(model: eqspike.Model, params: Params, x: chex.Array, y: chex.Array,
           key: chex.PRNGKey) -> Dict[str, object]:
  """The trajectories of one example through the free and both nudged phases.

  Args:
    model: the EqSpike model (``eqspike.model_from_config``; static under jit, e.g.
      ``jax.jit(record, static_argnums=0)``). The phases run at ``+beta`` and ``-beta`` with
      ``beta = model.nudging.beta`` whatever the nudging mode, so both directions can be
      compared.
    params: the network.
    x: one input ``[n_0]``, in [0, 1].
    y: its one-hot target ``[n_out]``.
    key: the step's key as ``model.estimate`` takes it: the free phase draws what
      ``eqspike.free_phase(..., x[None], dyn, key)`` (and so prediction) draws, and both nudged
      phases share one stream, so that they differ only by the nudge.

  Returns:
    ``{"input_spikes": [t_free + t_nudge, n_0], "free": ..., "nudged_plus": ...,
    "nudged_minus": ...}``, each phase ``{"u": tuple of [T + 1, n_l], "spikes": tuple of
    [T, n_l]}`` over the free layers (see the module docstring for the times).
  """
  chex.assert_rank([x, y], 1)
  arch, dyn, beta = model.arch, model.dyn, model.nudging.beta
  x, y = x[None], y[None]
  free = eqspike.free_phase(arch, params, x, dyn, key)
  # The same encoder continues, so the nudged phases see the free phase's input trains go on.
  s_in_nudge = eqspike.nudged_input(x, free, dyn, key)
  drives = spiking.drives_of(arch, params, s_in_nudge, dyn)
  states, traces = eqspike.nudged_phases(arch, params, drives, free, y,
                                         jnp.array([beta, -beta], x.dtype), dyn, key)
  plus, minus = (ep_core.phase((traces, states), i) for i in (0, 1))
  return {
      "input_spikes": jnp.concatenate([free.s_in, s_in_nudge], axis=1)[0],
      "free": _phase_record(free.trace, free.state),
      "nudged_plus": _phase_record(*plus),
      "nudged_minus": _phase_record(*minus),
  }
