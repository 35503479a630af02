"""The EP core every model shares: nudging, the contrast scale, accumulated and online updates.

A model supplies its dynamics and its estimate of the contrast; this module turns them into
training updates, the same way for every model:

* ``Nudging`` says how many nudged phases a step runs and at which betas (one-sided, random
  sign, symmetric), and the scale ``-1 / (B (beta_a - beta_b))`` that turns a model's summed
  contrast into an estimate of ``dC/dtheta`` (the *gradient*, the negative of the update);
* ``accumulated_update``: the contrast of whole phases, one optimizer step per batch;
* ``online_update``: the skeleton of a scan over nudged steps that applies each step's contrast
  at once (C-EP for rate EP; what a chip does for EqSpike), parameterised by a model's
  ``OnlinePhases``.

Randomness: the sign of a random-sign beta is drawn from the step's key *before* it is made
device-specific, so every device of a data-parallel run uses the same sign (the estimator of one
device); the model's own stream (stochastic spikes) is then folded with the device index.
"""

import dataclasses
from typing import Any, Callable, NamedTuple, Optional, Tuple

import chex
import jax
import jax.numpy as jnp
import optax

from eqspike_jax.config_lib import NUDGING_MODES, UPDATE_MODES


class Algorithm(NamedTuple):
  """What the trainer needs from a model: three pure functions."""
  init_params: Callable  # key -> params
  # (params, opt_state, x, y, key, axis_name=None) -> (params, opt_state, metrics):
  update: Callable
  predict: Callable      # (params, x, key) -> outputs [B, n_out]; the prediction is the argmax.


@dataclasses.dataclass(frozen=True)
class Nudging:
  """Which nudged phases a training step runs, and how their contrast is scaled."""
  mode: str = "one_sided"
  beta: float = 0.1

  def __post_init__(self):
    if self.mode not in NUDGING_MODES:
      raise ValueError(f"nudging must be one of {NUDGING_MODES}, got {self.mode!r}.")

  @property
  def symmetric(self) -> bool:
    """Phases at +beta and -beta, contrasted with each other (no O(beta) bias)."""
    return self.mode == "symmetric"

  @property
  def num_phases(self) -> int:
    """Nudged phases per training step (the free phase is the reference of one-sided modes)."""
    return 2 if self.symmetric else 1

  def betas(self, key: chex.PRNGKey, dtype=jnp.float32) -> chex.Array:
    """The nudges of this step's phases, ``[num_phases]``."""
    if self.symmetric:
      return jnp.array([self.beta, -self.beta], dtype)
    if self.mode == "random_sign":
      return jnp.where(jax.random.bernoulli(key), self.beta, -self.beta).astype(dtype)[None]
    return jnp.asarray(self.beta, dtype)[None]

  def scale(self, batch: int, betas: chex.Array) -> chex.Numeric:
    """``-1 / (B (beta_a - beta_b))``: the contrast's factor, for phases ``a`` and ``b``.

    Symmetric nudging contrasts +beta with -beta; one-sided modes contrast the nudged phase
    with the free phase (beta 0).
    """
    if self.symmetric:
      return -1.0 / (batch * (self.beta - (-self.beta)))
    return -1.0 / (batch * (betas[0] - 0.0))


def split_step_key(key: chex.PRNGKey, nudging: Nudging, dtype,
                   axis_name: Optional[str]) -> Tuple[chex.Array, chex.PRNGKey]:
  """The step's betas (shared by every device) and the model's key (its own per device)."""
  k_sign, k_model = jax.random.split(key)
  if axis_name is not None:
    k_model = jax.random.fold_in(k_model, jax.lax.axis_index(axis_name))
  return nudging.betas(k_sign, dtype), k_model


def scale_tree(tree: Any, factor: chex.Numeric) -> Any:
  return jax.tree.map(lambda a: factor * a, tree)


def gradient_norms(grads: Any) -> dict:
  return {f"grad_norm/layer{l}": optax.global_norm(g) for l, g in enumerate(grads)}


def apply_gradient(optimizer: optax.GradientTransformation, params, opt_state, grads):
  updates, opt_state = optimizer.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state


def _pmean(tree, axis_name: Optional[str]):
  return tree if axis_name is None else jax.lax.pmean(tree, axis_name)


# A model's estimate: (params, x, y, betas, key) -> (summed contrast, metrics). The contrast is
# the model's statistic of phase a less that of phase b, summed over the batch; the core scales.
EstimateFn = Callable[..., Tuple[Any, dict]]


def estimate_gradient(estimate_fn: EstimateFn, nudging: Nudging, params, x, y, betas, key):
  """The model's contrast as an estimate of ``dC/dtheta`` for the batch, and its metrics."""
  chex.assert_rank([x, y], 2)
  chex.assert_equal_shape_prefix([x, y], prefix_len=1)
  sums, metrics = estimate_fn(params, x, y, betas, key)
  return scale_tree(sums, nudging.scale(x.shape[0], betas)), metrics


def accumulated_update(estimate_fn: EstimateFn, nudging: Nudging,
                       optimizer: optax.GradientTransformation) -> Callable:
  """Standard EP: the whole contrast is one gradient, handed to ``optimizer`` once per batch."""

  def update(params, opt_state, x, y, key, axis_name: Optional[str] = None):
    betas, key = split_step_key(key, nudging, x.dtype, axis_name)
    grads, metrics = estimate_gradient(estimate_fn, nudging, params, x, y, betas, key)
    grads, metrics = _pmean((grads, metrics), axis_name)
    params, opt_state = apply_gradient(optimizer, params, opt_state, grads)
    return params, opt_state, {**metrics, **gradient_norms(grads)}

  return update


class OnlinePhases(NamedTuple):
  """What a model supplies to ``online_update``.

  begin(params, x, y, betas, key) -> (states, xs, free): runs the free phase; returns the states
    the nudged phases start from, the per-step inputs the scan reads (time-major) and whatever
    ``metrics`` needs of the free phase.
  step(params, states, xs_t, y, betas) -> (states, sums, obs): one nudged step of every phase at
    the current weights; ``sums`` is that step's contrast (unscaled, like an ``EstimateFn``'s).
  metrics(params, y, free, obs) -> dict: the step's metrics; ``obs`` is time-major.
  """
  begin: Callable
  step: Callable
  metrics: Callable


def online_update(phases: OnlinePhases, nudging: Nudging, optimizer: optax.GradientTransformation,
                  unroll: int = 1) -> Callable:
  """The contrast applied at every nudged step: the dynamics see the moving weights.

  Summed over the phase the per-step changes telescope to the accumulated contrast, so with SGD
  and a small learning rate both modes agree to first order (tested per model). Each nudged step
  is one optimizer step.
  """

  def update(params, opt_state, x, y, key, axis_name: Optional[str] = None):
    chex.assert_rank([x, y], 2)
    betas, key = split_step_key(key, nudging, x.dtype, axis_name)
    scale = nudging.scale(x.shape[0], betas)
    states, xs, free = phases.begin(params, x, y, betas, key)

    def body(carry, xs_t):
      params, opt_state, states, total = carry
      states, sums, obs = phases.step(params, states, xs_t, y, betas)
      grads = _pmean(scale_tree(sums, scale), axis_name)
      params, opt_state = apply_gradient(optimizer, params, opt_state, grads)
      return (params, opt_state, states, jax.tree.map(jnp.add, total, grads)), obs

    zeros = jax.tree.map(jnp.zeros_like, params)
    (params, opt_state, _, total), obs = jax.lax.scan(
        body, (params, opt_state, states, zeros), xs, unroll=unroll)
    metrics = _pmean(phases.metrics(params, y, free, obs), axis_name)
    return params, opt_state, {**metrics, **gradient_norms(total)}

  return update


def make_update(update_mode: str, nudging: Nudging, optimizer: optax.GradientTransformation, *,
                estimate_fn: EstimateFn, online: Optional[OnlinePhases],
                unroll: int = 1) -> Callable:
  """The trainer's ``update`` for ``update_mode``, from a model's estimate and online phases."""
  if update_mode == "accumulated":
    return accumulated_update(estimate_fn, nudging, optimizer)
  if update_mode == "online":
    if online is None:
      raise ValueError("this model has no online update; use update_mode='accumulated'.")
    return online_update(online, nudging, optimizer, unroll)
  raise ValueError(f"update_mode must be one of {UPDATE_MODES}, got {update_mode!r}.")


def optimizer_steps_per_batch(update_mode: str, t_nudge: int) -> int:
  """Online updates take one optimizer step per nudged step (the schedule counts them)."""
  return t_nudge if update_mode == "online" else 1


def phase(tree, i: int):
  """Phase ``i`` of a tree with a leading axis over phases (``vmap`` over betas)."""
  return jax.tree.map(lambda a: a[i], tree)


def vmap_over_betas(phase_fn: Callable, betas: chex.Array, *args):
  """Runs ``phase_fn(*args, beta)`` at each of ``betas`` side by side; leading axis = phase."""
  chex.assert_rank(betas, 1)
  return jax.vmap(lambda b: phase_fn(*args, b))(betas)
