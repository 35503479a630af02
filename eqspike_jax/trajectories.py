"""Spikes and states of every layer over time for one example: what the raster plots draw.

``record`` runs the phases of one EqSpike training step on one example with the library's own
phase functions (``eqspike.input_trains``, ``drives_of``, ``batched_phase`` on a batch of 1): the
free phase from rest, then two nudged phases at ``+beta`` and ``-beta`` that both start from the
free end state and continue the same input trains, as ``eqspike.eqspike_gradient`` does.

Time convention (``eqspike.network_step``): step ``t`` integrates ``u(t) -> u(t+1)`` driven by the
spikes ``S(t)``, then emits ``S(t+1)`` from ``u(t+1)``. A phase of ``T`` steps that starts at time
``t0`` records

* ``u``: the states at times ``t0 .. t0 + T``, ``[T + 1, n_l]`` per free layer (its first row is
  the state the phase starts from, so consecutive phases join up);
* ``spikes``: the spikes emitted at times ``t0 + 1 .. t0 + T``, ``[T, n_l]``;

and the input trains ``S_x(t)`` of times ``0 .. t_free + t_nudge - 1`` (the input drives the step
that starts at ``t``) are shared by all phases.
"""

import dataclasses
from typing import Dict, Tuple

import chex
import jax
import jax.numpy as jnp

from eqspike_jax import eqspike
from eqspike_jax.network import Params

PHASES = ("free", "nudged_plus", "nudged_minus")


def _phase_record(trace: eqspike.Trace, end: eqspike.NetworkState) -> Dict[str, Tuple]:
  """``u`` (``[T + 1, n]``) and emitted ``spikes`` (``[T, n]``) per layer, batch of 1 dropped."""
  # The states the steps started from, then the end state: exact, where u(t) + du(t) rounds.
  u = tuple(jnp.concatenate([t_u, s.u[:, None]], axis=1)[0] for t_u, s in zip(trace.u, end))
  return {"u": u, "spikes": tuple(s[0] for s in trace.spikes)}


def record(params: Params, x: chex.Array, y: chex.Array, dyn: eqspike.SpikingDynamics,
           beta: chex.Numeric, key: chex.PRNGKey) -> Dict[str, object]:
  """The trajectories of one example through the free and both nudged phases.

  Args:
    params: the network.
    x: one input ``[n_0]``, in [0, 1].
    y: its one-hot target ``[n_out]``.
    dyn: the dynamics (static under jit).
    beta: nudging strength; the phases run at ``+beta`` and ``-beta`` whatever the config's
      nudging mode, so both directions can be compared.
    key: the free phase uses it as ``eqspike.free_phase(params, x[None], dyn, key)`` does (the same
      input trains and spikes, through ``eqspike.free_phase_with_input``); the nudged phases draw
      stochastic spikes from ``fold_in(key, 1)``, one stream shared by both so that they differ
      only by the nudge.

  Returns:
    ``{"input_spikes": [t_free + t_nudge, n_0], "free": ..., "nudged_plus": ...,
    "nudged_minus": ...}``, each phase ``{"u": tuple of [T + 1, n_l], "spikes": tuple of
    [T, n_l]}`` over the free layers (see the module docstring for the times).
  """
  chex.assert_rank([x, y], 1)
  # Pairing changes only which spikes the trace reports, not the dynamics: "next_step" reports
  # the spikes each step emits, aligned with the state they were emitted from.
  dyn = dataclasses.replace(dyn, pairing="next_step")
  x, y = x[None], y[None]
  # One encoder for both phases, so the nudged phases continue the free phase's input trains.
  s_in, s_free, tr_free = eqspike.free_phase_with_input(params, x, y, key, dyn)
  drives = eqspike.drives_of(params, s_in[:, dyn.t_free:], dyn)
  s_pm, tr_pm = eqspike.nudged_phases(params, drives, s_free, y,
                                      jnp.array([beta, -beta], x.dtype), dyn,
                                      jax.random.fold_in(key, 1))
  plus, minus = (jax.tree.map(lambda a, i=i: a[i], (tr_pm, s_pm)) for i in (0, 1))
  return {
      "input_spikes": s_in[0],
      "free": _phase_record(tr_free, s_free),
      "nudged_plus": _phase_record(*plus),
      "nudged_minus": _phase_record(*minus),
  }
