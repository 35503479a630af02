"""Surrogate derivatives of the spike, for training the spiking network by BPTT (a baseline).

The forward pass is the spike itself, ``S = [v >= 0]`` with ``v = e + u - 1`` the sigma-delta
accumulator's distance to threshold; only the derivative is replaced:

* ``fast_sigmoid`` (SuperSpike, Zenke & Ganguli 2018): ``dS/dv = 1 / (slope |v| + 1)^2``;
* ``straight_through``: ``dS/dv = 1`` (the spike passes its input's gradient unchanged).

Stochastic spikes ``S ~ Bernoulli(u)`` take the straight-through estimator ``dS/du = 1``.
"""

import dataclasses
import functools

import chex
import jax
import jax.numpy as jnp

KINDS = ("fast_sigmoid", "straight_through")


def derivative(kind: str, slope: float, v: chex.Array) -> chex.Array:
  """The surrogate ``dS/dv`` at distance ``v`` from the threshold."""
  if kind == "fast_sigmoid":
    return 1.0 / jnp.square(slope * jnp.abs(v) + 1.0)
  if kind == "straight_through":
    return jnp.ones_like(v)
  raise ValueError(f"surrogate must be one of {KINDS}, got {kind!r}.")


@functools.lru_cache(maxsize=None)
def heaviside(kind: str, slope: float):
  """``v -> [v >= 0]`` whose derivative is the surrogate (one jitted rule per kind, slope)."""

  @jax.custom_jvp
  def step(v):
    return (v >= 0.0).astype(v.dtype)

  @step.defjvp
  def step_jvp(primals, tangents):
    (v,), (dv,) = primals, tangents
    return step(v), derivative(kind, slope, v) * dv

  return step


@dataclasses.dataclass(frozen=True)
class Surrogate:
  """Which surrogate the spikes of a BPTT-trained network use."""
  kind: str = "fast_sigmoid"
  slope: float = 10.0

  def deterministic(self, e_plus_u: chex.Array) -> chex.Array:
    return heaviside(self.kind, float(self.slope))(e_plus_u - 1.0)

  def stochastic(self, draws: chex.Array, u: chex.Array) -> chex.Array:
    """Straight-through Bernoulli: the draws forward, ``dS/du = 1`` backward."""
    return jax.lax.stop_gradient(draws) + u - jax.lax.stop_gradient(u)
