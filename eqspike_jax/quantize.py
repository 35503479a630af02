"""Low-precision synapses: weights stored on a k-bit grid, updates applied by stochastic rounding.

A chip holds each weight as a k-bit integer times a per-layer step (Loihi: up to 8 bits with a
shared exponent). Here a layer's weights live on the symmetric grid ``{-L, ..., L} * delta`` with
``L = 2^(k-1) - 1`` and ``delta = w_max / L``, ``w_max = range_scale / sqrt(fan_in)`` (a
multiple of the initial weights' bound). An update smaller than ``delta`` would be lost by
rounding to the nearest level; stochastic rounding moves to the level above with probability
equal to the remaining fraction, so ``E[q(w)] = w`` and small updates survive on average. Biases
stay in float (a chip's bias register is wider than its synapses).

``quantized`` wraps any optax optimizer: the inner update is computed in float, added, and the
sum rounded back onto the grid; its random stream lives in the optimizer state, so a resumed run
draws what the uninterrupted run would have.
"""

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from eqspike_jax.config_lib import ROUNDINGS


def levels(bits: int) -> int:
  """``L``: the grid has ``2 L + 1`` levels (one code of the k-bit range is left unused)."""
  if bits < 2:
    raise ValueError(f"synapse_bits = {bits}: a signed weight needs at least 2 bits.")
  return 2 ** (bits - 1) - 1


def weight_range(w: chex.Array, range_scale: float) -> chex.Numeric:
  """``w_max`` of a weight array: ``range_scale / sqrt(fan_in)``, fan-in = all but the last axis."""
  fan_in = 1
  for n in w.shape[:-1]:
    fan_in *= n
  return range_scale / jnp.sqrt(float(fan_in))


def to_grid(w: chex.Array, bits: int, w_max: chex.Numeric, key=None) -> chex.Array:
  """``w`` clipped to ``[-w_max, w_max]`` and rounded onto the grid (stochastically with a key)."""
  n = levels(bits)
  delta = w_max / n
  v = jnp.clip(w / delta, -n, n)
  if key is None:
    v = jnp.round(v)
  else:
    v = jnp.minimum(jnp.floor(v + jax.random.uniform(key, v.shape, v.dtype)), n)
  return v * delta


def quantize_weights(params, bits: int, range_scale: float, key=None):
  """Every layer's ``w`` on its grid; biases unchanged. ``key``: stochastic rounding."""
  keys = [None] * len(params) if key is None else list(jax.random.split(key, len(params)))
  return tuple(p.replace(w=to_grid(p.w, bits, weight_range(p.w, range_scale), k))
               for p, k in zip(params, keys))


class QuantizedState(NamedTuple):
  inner: optax.OptState
  key: chex.PRNGKey


def quantized(inner: optax.GradientTransformation, bits: int, range_scale: float,
              rounding: str, key: chex.PRNGKey) -> optax.GradientTransformation:
  """``inner``, with the updated weights rounded back onto the k-bit grid at every step."""
  if rounding not in ROUNDINGS:
    raise ValueError(f"synapse_rounding must be one of {ROUNDINGS}, got {rounding!r}.")
  levels(bits)

  def init(params):
    return QuantizedState(inner.init(params), key)

  def update(grads, state, params):
    updates, inner_state = inner.update(grads, state.inner, params)
    key_next, key_round = jax.random.split(state.key)
    target = optax.apply_updates(params, updates)
    on_grid = quantize_weights(target, bits, range_scale,
                               key_round if rounding == "stochastic" else None)
    return jax.tree.map(jnp.subtract, on_grid, params), QuantizedState(inner_state, key_next)

  return optax.GradientTransformation(init, update)


def quantize_state(u: chex.Array, bits: int) -> chex.Array:
  """A neuron state in [0, 1] on ``2^bits`` levels (nearest); ``bits = 0`` leaves it in float."""
  if not bits:
    return u
  top = 2 ** bits - 1
  return jnp.round(u * top) / top
