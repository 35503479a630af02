"""Rate-based Equilibrium Propagation in discrete time (EQSPIKE.md section 2).

The maths is written for one example (``step``, ``run_phase``) and batched with ``vmap`` at the
call site; time runs in ``lax.scan``. The free and nudged phases are the same function: the free
phase is a phase without nudge.

The fixed point of ``s = rho(W s + b + beta (y - s_o))`` is a stationary point of
``F = E + beta C`` with the Hopfield energy ``E(s) = sum_i G(s_i) - 1/2 s^T W s - s^T b``
(``G' = rho^{-1}``), which is why the EP contrast below estimates ``dC/dtheta`` (tested against
``jax.grad`` in ``tests/rate_ep_test.py``). The nudge is applied inside ``rho`` for that reason.
"""

import dataclasses
import functools
from typing import Callable, Optional, Tuple

import chex
import jax
import jax.numpy as jnp
import ml_collections
import optax

from eqspike_jax import ep_core
from eqspike_jax import layers
from eqspike_jax import network
from eqspike_jax.layers import Architecture
from eqspike_jax.network import Layer, Params, State


@dataclasses.dataclass(frozen=True)
class Dynamics:
  """Static settings of the rate network's dynamics (hashable, so usable under jit)."""
  activation: str = "sigmoid4"
  t_free: int = 30   # Free-phase steps from s = 0.
  t_nudge: int = 10  # Nudged-phase steps from the free end state.
  unroll: int = 1    # lax.scan unroll factor: a speed knob, never changes results.

  @property
  def rho(self) -> Callable[[chex.Array], chex.Array]:
    return network.get_activation(self.activation)


# ----------------------------------------------------------------------------------------------
# Dynamics of one example.
# ----------------------------------------------------------------------------------------------

def step(arch: Architecture, params: Params, drive: chex.Array, s: State, y: chex.Array,
         beta: Optional[chex.Numeric], rho: Callable[[chex.Array], chex.Array]) -> State:
  """One synchronous update of every free layer of one example.

  Args:
    arch: the layers.
    params: the network.
    drive: ``forward(x)`` of the first layer for this example; it never changes, so callers
      compute it once per phase instead of once per step.
    s: the state, one array per free layer.
    y: one-hot target, ``[n_out]``.
    beta: nudging strength; None in the free phase (no nudge term at all).
    rho: activation.
  """
  chex.assert_rank([drive, y], 1)
  chex.assert_equal_shape([drive, s[0]])
  chex.assert_equal_shape([y, s[-1]])
  pre = list(layers.layer_currents(arch, params, drive, s))
  if beta is not None:
    pre[-1] = pre[-1] + beta * (y - s[-1])
  return tuple(rho(p) for p in pre)


def run_phase(arch: Architecture, params: Params, drive: chex.Array, s0: State, y: chex.Array,
              beta: Optional[chex.Numeric], num_steps: int,
              rho: Callable[[chex.Array], chex.Array],
              unroll: int = 1) -> Tuple[State, chex.Array]:
  """Runs ``num_steps`` synchronous steps of one example from ``s0``.

  Returns:
    The end state and the residual ``max |s_T - s_(T-1)|`` over all units, which says whether the
    phase settled.
  """
  chex.assert_scalar_positive(num_steps)

  def body(s, _):
    return step(arch, params, drive, s, y, beta, rho), None

  # The last step runs outside the scan so the residual costs nothing on the other steps.
  s_tm1, _ = jax.lax.scan(body, s0, None, length=num_steps - 1, unroll=unroll)
  s_t = step(arch, params, drive, s_tm1, y, beta, rho)
  residual = jnp.max(jnp.concatenate([jnp.abs(a - b) for a, b in zip(s_t, s_tm1)]))
  return s_t, residual


def batched_phase(arch, params, drive, s0, y, beta, num_steps, rho, unroll=1):
  """``run_phase`` over a batch: params and beta shared, everything else per example."""
  phase = functools.partial(run_phase, arch, num_steps=num_steps, rho=rho, unroll=unroll)
  return jax.vmap(phase, in_axes=(None, 0, 0, 0, None))(params, drive, s0, y, beta)


def free_phase(arch: Architecture, params: Params, x: chex.Array,
               dyn: Dynamics) -> Tuple[State, chex.Array, chex.Array]:
  """The free phase of a batch ``x [B, n_in]`` from rest: ``(states, residuals [B], drive)``.

  The one free phase of this model: training, prediction and measurements all run it. ``drive``
  (the input layer's forward map of ``x``) is returned for the nudged phases to reuse.
  """
  chex.assert_rank(x, 2)
  drive = arch[0].forward(params[0], x)  # Once per example, reused by every step of all phases.
  y_unused = jnp.zeros((x.shape[0], arch[-1].n_out), x.dtype)
  s0 = layers.zero_states(arch, (x.shape[0],), x.dtype)
  s_free, residual = batched_phase(arch, params, drive, s0, y_unused, None, dyn.t_free, dyn.rho,
                                   dyn.unroll)
  return s_free, residual, drive


# ----------------------------------------------------------------------------------------------
# The EP contrast.
# ----------------------------------------------------------------------------------------------

def contrast_sums(arch: Architecture, x: chex.Array, s_a: State, s_b: State) -> Params:
  """``dPhi/dtheta(s_a) - dPhi/dtheta(s_b)`` summed over the batch.

  ``Phi = sum_l s_{l+1} . (forward_l(s_l) + b_l)``, so ``dPhi/dW_l = outer(s_l, s_{l+1})``. The
  core scales it by ``-1 / (B (beta_a - beta_b))`` into the estimate of ``dC/dtheta``. It is
  written on the batch because it is a reduction over the batch: a vmapped per-example version
  would materialise ``B`` outer products.
  """
  chex.assert_rank(x, 2)
  chex.assert_equal_shape_prefix([x, *s_a, *s_b], prefix_len=1)
  sums = []
  for l in range(len(s_a)):
    post_a, post_b = s_a[l], s_b[l]
    if l == 0:
      # The input is clamped, the same in both states: one product instead of two.
      dw = arch[0].outer(x, post_a - post_b)
    else:
      dw = arch[l].outer(s_a[l - 1], post_a) - arch[l].outer(s_b[l - 1], post_b)
    sums.append(Layer(w=dw, b=jnp.sum(post_a - post_b, axis=0)))
  return tuple(sums)


def free_phase_metrics(s_free: State, y: chex.Array, residual: chex.Array) -> dict:
  return {**network.classification_metrics(s_free[-1], y), "residual": jnp.mean(residual),
          "activity": network.layer_activity(s_free)}


def estimate(arch: Architecture, dyn: Dynamics, nudging: ep_core.Nudging, params: Params,
             x: chex.Array, y: chex.Array, betas: chex.Array, key=None) -> Tuple[Params, dict]:
  """Free phase, nudged phase(s), and the contrast (an ``ep_core.EstimateFn``)."""
  del key  # The rate network is deterministic.
  s_free, residual, drive = free_phase(arch, params, x, dyn)
  nudged = functools.partial(batched_phase, arch, params, drive, s_free, y,
                             num_steps=dyn.t_nudge, rho=dyn.rho, unroll=dyn.unroll)
  if nudging.symmetric:
    s_pm, _ = ep_core.vmap_over_betas(lambda b: nudged(b), betas)
    sums = contrast_sums(arch, x, ep_core.phase(s_pm, 0), ep_core.phase(s_pm, 1))
  else:
    s_nudged, _ = nudged(betas[0])
    sums = contrast_sums(arch, x, s_nudged, s_free)
  return sums, free_phase_metrics(s_free, y, residual)


def online_phases(arch: Architecture, dyn: Dynamics) -> ep_core.OnlinePhases:
  """C-EP (Ernoult et al. 2020): each nudged step's contrast with the step before it."""
  batched_step = jax.vmap(functools.partial(step, arch), in_axes=(None, 0, 0, 0, None, None))

  def begin(params, x, y, betas, key):
    del y, key
    if betas.shape[0] != 1:  # Each step contrasts one nudged state with the step before it.
      raise ValueError("online updates of rate EP (C-EP) need one nudged phase: nudging "
                       "'one_sided' or 'random_sign', or update_mode='accumulated'.")
    s_free, residual, _ = free_phase(arch, params, x, dyn)
    return s_free, jnp.broadcast_to(x, (dyn.t_nudge,) + x.shape), (s_free, residual)

  def one_step(params, s, x, y, betas):
    # The weights changed at the last step, so the input drive must be recomputed.
    s_next = batched_step(params, arch[0].forward(params[0], x), s, y, betas[0], dyn.rho)
    return s_next, contrast_sums(arch, x, s_next, s), None

  def metrics(params, y, free, obs):
    del params, obs
    return free_phase_metrics(free[0], y, free[1])

  return ep_core.OnlinePhases(begin=begin, step=one_step, metrics=metrics)


def predict(arch: Architecture, params: Params, x: chex.Array, key=None, *,
            dyn: Dynamics) -> chex.Array:
  """Output state after the free phase, ``[B, n_out]``; the prediction is its argmax."""
  del key  # The rate network is deterministic.
  return free_phase(arch, params, x, dyn)[0][-1]


def dynamics_from_config(config: ml_collections.ConfigDict) -> Dynamics:
  return Dynamics(activation=config.rate_ep.activation, t_free=config.t_free,
                  t_nudge=config.t_nudge, unroll=config.scan_unroll)


def validate(config: ml_collections.ConfigDict, fail: Callable) -> None:
  """Checks ``config.rate_ep`` and its combinations with the shared fields."""
  if config.rate_ep.activation not in network.ACTIVATIONS:
    fail("rate_ep.activation", config.rate_ep.activation,
         f"must be one of {sorted(network.ACTIVATIONS)}.")
  if config.update_mode == "online" and ep_core.Nudging(config.nudging, config.beta).symmetric:
    fail("update_mode", config.update_mode, "online updates of rate EP (C-EP) need "
         "config.nudging 'one_sided' or 'random_sign'; use update_mode='accumulated' for "
         "symmetric nudging.")


def make_algorithm(config: ml_collections.ConfigDict,
                   optimizer: optax.GradientTransformation) -> ep_core.Algorithm:
  arch = layers.from_config(config)
  dyn = dynamics_from_config(config)
  nudging = ep_core.Nudging(config.nudging, config.beta)
  update = ep_core.make_update(
      config.update_mode, nudging, optimizer,
      estimate_fn=functools.partial(estimate, arch, dyn, nudging),
      online=online_phases(arch, dyn), unroll=dyn.unroll)
  return ep_core.Algorithm(
      init_params=lambda key: layers.init_params(arch, key, config.init, config.init_scale),
      update=update,
      predict=lambda params, x, key=None: predict(arch, params, x, key, dyn=dyn))
