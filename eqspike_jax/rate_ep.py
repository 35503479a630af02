"""Rate-based Equilibrium Propagation in discrete time (EQSPIKE.md section 2).

The maths is written for one example (``step``, ``run_phase``) and batched with ``vmap`` at the
call site; time runs in ``lax.scan``. The free and nudged phases are the same function: the free
phase is a nudged phase with ``beta = 0``.

The fixed point of ``s = rho(W s + b + beta (y - s_o))`` is a stationary point of
``F = E + beta C`` with the Hopfield energy ``E(s) = sum_i G(s_i) - 1/2 s^T W s - s^T b``
(``G' = rho^{-1}``), which is why the EP contrast below estimates ``dC/dtheta`` (tested against
``jax.grad`` in ``tests/rate_ep_test.py``). The nudge is applied inside ``rho`` for that reason.
"""

import dataclasses
from typing import Callable, NamedTuple, Optional, Tuple

import chex
import jax
import jax.numpy as jnp
import optax

from eqspike_jax import network
from eqspike_jax.network import Layer, Params, State

NUDGING_MODES = ("one_sided", "random_sign", "symmetric")
UPDATE_MODES = ("accumulated", "online")


@dataclasses.dataclass(frozen=True)
class Dynamics:
  """Static settings of the rate network's dynamics (hashable, so usable under jit)."""
  activation: str = "sigmoid4"
  t_free: int = 30   # Free-phase steps from s = 0.
  t_nudge: int = 10  # Nudged-phase steps from the free end state.
  unroll: int = 1    # lax.scan unroll factor: a speed knob, never changes results.


# ----------------------------------------------------------------------------------------------
# Dynamics of one example.
# ----------------------------------------------------------------------------------------------

def step(params: Params, drive: chex.Array, s: State, y: chex.Array, beta: chex.Numeric,
         rho: Callable[[chex.Array], chex.Array]) -> State:
  """One synchronous update of every free layer of one example.

  Args:
    params: the network.
    drive: ``x @ params[0].w`` for this example, ``[n_1]``; it never changes, so callers compute
      it once per phase instead of once per step.
    s: the state, one ``[n_l]`` array per free layer.
    y: one-hot target, ``[n_out]``.
    beta: nudging strength (0 in the free phase).
    rho: activation.
  """
  chex.assert_rank([drive, y], 1)
  chex.assert_equal_shape([drive, s[0]])
  chex.assert_equal_shape([y, s[-1]])
  n = len(s)
  s_next = []
  for l in range(n):
    pre = (drive if l == 0 else s[l - 1] @ params[l].w) + params[l].b
    if l + 1 < n:
      pre = pre + s[l + 1] @ params[l + 1].w.T
    else:
      pre = pre + beta * (y - s[l])
    s_next.append(rho(pre))
  return tuple(s_next)


def run_phase(params: Params, drive: chex.Array, s0: State, y: chex.Array, beta: chex.Numeric,
              num_steps: int, rho: Callable[[chex.Array], chex.Array],
              unroll: int = 1) -> Tuple[State, chex.Array]:
  """Runs ``num_steps`` synchronous steps of one example from ``s0``.

  Returns:
    The end state and the residual ``max |s_T - s_(T-1)|`` over all units, which says whether the
    phase settled.
  """
  chex.assert_scalar_positive(num_steps)

  def body(s, _):
    return step(params, drive, s, y, beta, rho), None

  # The last step runs outside the scan so the residual costs nothing on the other steps.
  s_tm1, _ = jax.lax.scan(body, s0, None, length=num_steps - 1, unroll=unroll)
  s_t = step(params, drive, s_tm1, y, beta, rho)
  residual = jnp.max(jnp.concatenate([jnp.abs(a - b) for a, b in zip(s_t, s_tm1)]))
  return s_t, residual


# Batched over examples: params and beta shared, everything else per example.
batched_phase = jax.vmap(run_phase, in_axes=(None, 0, 0, 0, None, None, None, None))


def batched_zero_state(params: Params, batch_size: int, dtype=jnp.float32) -> State:
  return tuple(jnp.zeros((batch_size, layer.w.shape[1]), dtype) for layer in params)


def free_phase(params: Params, x: chex.Array, dyn: Dynamics) -> Tuple[State, chex.Array]:
  """The free phase of a batch ``x [B, n_in]`` from rest; returns states and residuals ``[B]``."""
  chex.assert_rank(x, 2)
  rho = network.get_activation(dyn.activation)
  drive = x @ params[0].w
  dummy_y = jnp.zeros((x.shape[0], params[-1].w.shape[1]), x.dtype)
  s0 = batched_zero_state(params, x.shape[0], x.dtype)
  return batched_phase(params, drive, s0, dummy_y, 0.0, dyn.t_free, rho, dyn.unroll)


# ----------------------------------------------------------------------------------------------
# The EP estimate of the gradient.
# ----------------------------------------------------------------------------------------------

def contrast_gradient(x: chex.Array, s_a: State, s_b: State, beta_a: chex.Numeric,
                      beta_b: chex.Numeric) -> Params:
  """EP's estimate of ``dC/dtheta`` from two batched states reached at nudges ``beta_a, beta_b``.

  ``-(1 / (beta_a - beta_b)) [dPhi/dtheta(s_a) - dPhi/dtheta(s_b)]`` averaged over the batch, with
  ``Phi = sum_l s_{l+1} . (s_l W_l + b_l)``, so ``dPhi/dW_l = s_l^T s_{l+1}``. One-sided EP is
  ``(s_beta, s_free, beta, 0)``; symmetric EP is ``(s_+beta, s_-beta, beta, -beta)``. This is the
  *gradient* (the negative of the update), ready for an optax optimizer.

  It is written on the batch rather than per example because it is a reduction over the batch:
  a vmapped per-example version would materialise ``B`` outer products.
  """
  chex.assert_rank(x, 2)
  chex.assert_equal_shape_prefix([x, *s_a, *s_b], prefix_len=1)
  batch = x.shape[0]
  scale = -1.0 / (batch * (beta_a - beta_b))
  grads = []
  for l in range(len(s_a)):
    post_a, post_b = s_a[l], s_b[l]
    if l == 0:
      # The input is clamped, the same in both states: one matmul instead of two.
      dw = x.T @ (post_a - post_b)
    else:
      dw = s_a[l - 1].T @ post_a - s_b[l - 1].T @ post_b
    db = jnp.sum(post_a - post_b, axis=0)
    grads.append(Layer(w=scale * dw, b=scale * db))
  return tuple(grads)


def signed_beta(beta: float, nudging: str, key: chex.PRNGKey) -> chex.Array:
  """The nudge of a one-sided phase; ``random_sign`` flips it with probability 1/2 per batch."""
  if nudging == "random_sign":
    return jnp.where(jax.random.bernoulli(key), beta, -beta)
  return jnp.asarray(beta)


def ep_gradient(params: Params, x: chex.Array, y: chex.Array, key: chex.PRNGKey, *,
                dyn: Dynamics, beta: float, nudging: str) -> Tuple[Params, dict]:
  """Free phase, nudged phase(s) and the EP gradient estimate for a batch.

  Returns:
    The gradient estimate (a pytree like ``params``) and per-batch metrics.
  """
  chex.assert_rank([x, y], 2)
  chex.assert_equal_shape_prefix([x, y], prefix_len=1)
  rho = network.get_activation(dyn.activation)
  drive = x @ params[0].w  # Once per example, reused by every step of both phases.
  s0 = batched_zero_state(params, x.shape[0], x.dtype)
  s_free, residual = batched_phase(params, drive, s0, y, 0.0, dyn.t_free, rho, dyn.unroll)
  if nudging == "symmetric":
    # Both nudged phases in one scan: vmap over the sign of beta.
    betas = jnp.array([beta, -beta], x.dtype)
    two_phases = jax.vmap(batched_phase, in_axes=(None, None, None, None, 0, None, None, None))
    s_pm, _ = two_phases(params, drive, s_free, y, betas, dyn.t_nudge, rho, dyn.unroll)
    s_plus = jax.tree.map(lambda a: a[0], s_pm)
    s_minus = jax.tree.map(lambda a: a[1], s_pm)
    grads = contrast_gradient(x, s_plus, s_minus, beta, -beta)
  else:
    b = signed_beta(beta, nudging, key)
    s_nudged, _ = batched_phase(params, drive, s_free, y, b, dyn.t_nudge, rho, dyn.unroll)
    grads = contrast_gradient(x, s_nudged, s_free, b, 0.0)
  return grads, free_phase_metrics(s_free[-1], y, residual)


def free_phase_metrics(s_out: chex.Array, y: chex.Array, residual: chex.Array) -> dict:
  return {
      "loss": jnp.mean(network.cost(s_out, y)),
      "accuracy": jnp.mean(jnp.argmax(s_out, -1) == jnp.argmax(y, -1)),
      "residual": jnp.mean(residual),
  }


def gradient_norms(grads: Params) -> dict:
  return {f"grad_norm/layer{l}": optax.global_norm(g) for l, g in enumerate(grads)}


# ----------------------------------------------------------------------------------------------
# Parameter updates: accumulated (one optimizer step per batch) and online (C-EP).
# ----------------------------------------------------------------------------------------------

def accumulated_update(params, opt_state, x, y, key, *, dyn, beta, nudging, optimizer,
                       axis_name: Optional[str] = None):
  """Standard EP: the whole contrast is one gradient, handed to ``optimizer`` once per batch."""
  grads, metrics = ep_gradient(params, x, y, key, dyn=dyn, beta=beta, nudging=nudging)
  if axis_name is not None:
    grads, metrics = jax.lax.pmean((grads, metrics), axis_name)
  updates, opt_state = optimizer.update(grads, opt_state, params)
  params = optax.apply_updates(params, updates)
  return params, opt_state, {**metrics, **gradient_norms(grads)}


def online_update(params, opt_state, x, y, key, *, dyn, beta, nudging, optimizer,
                  axis_name: Optional[str] = None):
  """C-EP (Ernoult et al. 2020): the per-step contrast is applied at every nudged step.

  The weights move during the nudged phase and the dynamics see the moving weights. Summed over
  the phase the per-step contrasts telescope to the accumulated EP gradient, so with plain SGD
  and a small learning rate both modes agree to first order (``tests/rate_ep_test.py``). Each
  nudged step is one optimizer step, so this mode is meant for SGD.
  """
  if nudging == "symmetric":
    raise ValueError("update_mode='online' (C-EP) needs nudging 'one_sided' or 'random_sign'.")
  rho = network.get_activation(dyn.activation)
  drive = x @ params[0].w
  s0 = batched_zero_state(params, x.shape[0], x.dtype)
  s_free, residual = batched_phase(params, drive, s0, y, 0.0, dyn.t_free, rho, dyn.unroll)
  b = signed_beta(beta, nudging, key)
  batched_step = jax.vmap(step, in_axes=(None, 0, 0, 0, None, None))

  def body(carry, _):
    params, opt_state, s, total = carry
    # The weights changed at the last step, so the input drive must be recomputed.
    s_next = batched_step(params, x @ params[0].w, s, y, b, rho)
    grads = contrast_gradient(x, s_next, s, b, 0.0)
    if axis_name is not None:
      grads = jax.lax.pmean(grads, axis_name)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    total = jax.tree.map(jnp.add, total, grads)
    return (params, opt_state, s_next, total), None

  zeros = jax.tree.map(jnp.zeros_like, params)
  (params, opt_state, _, total), _ = jax.lax.scan(
      body, (params, opt_state, s_free, zeros), None, length=dyn.t_nudge, unroll=dyn.unroll)
  metrics = free_phase_metrics(s_free[-1], y, residual)
  if axis_name is not None:
    metrics = jax.lax.pmean(metrics, axis_name)
  return params, opt_state, {**metrics, **gradient_norms(total)}


def predict(params: Params, x: chex.Array, key: Optional[chex.PRNGKey] = None, *,
            dyn: Dynamics) -> chex.Array:
  """Output state after the free phase, ``[B, n_out]``; the prediction is its argmax."""
  del key  # The rate network is deterministic.
  s_free, _ = free_phase(params, x, dyn)
  return s_free[-1]


class Algorithm(NamedTuple):
  """What the trainer needs from a learning algorithm: three pure functions."""
  init_params: Callable  # key -> params
  update: Callable       # (params, opt_state, x, y, key, axis_name=None) -> (params, opt_state, metrics)
  predict: Callable      # (params, x, key) -> outputs [B, n_out]


def make_algorithm(config, optimizer: optax.GradientTransformation) -> Algorithm:
  dyn = Dynamics(activation=config.activation, t_free=config.t_free, t_nudge=config.t_nudge,
                 unroll=config.scan_unroll)
  update_fn = {"accumulated": accumulated_update, "online": online_update}[config.update_mode]

  def init(key):
    return network.init_params(key, config.layer_sizes, config.init, config.init_scale)

  def update(params, opt_state, x, y, key, axis_name=None):
    return update_fn(params, opt_state, x, y, key, dyn=dyn, beta=config.beta,
                     nudging=config.nudging, optimizer=optimizer, axis_name=axis_name)

  def predict_fn(params, x, key=None):
    return predict(params, x, key, dyn=dyn)

  return Algorithm(init_params=init, update=update, predict=predict_fn)
