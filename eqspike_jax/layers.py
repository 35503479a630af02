"""Layers as linear maps with their exact transpose: the one place a network's wiring lives.

A symmetric (Hopfield-like) network uses each weight layer twice: forward, from layer ``l`` into
layer ``l + 1``, and as feedback, from ``l + 1`` back into ``l``, through the exact transpose of
the same map (weights are symmetric by construction). The dynamics of every model, the learning
rules, the event counts and the FLOP counts are written against this interface, so a new kind of
layer (convolution, pooling) plugs in by supplying the same few methods.

A layer object holds only static structure (sizes); its parameters are a ``network.Layer``
pytree, so parameters, optimizer states and checkpoints stay plain arrays.
"""

import dataclasses
from typing import Sequence, Tuple

import chex
import jax
import jax.numpy as jnp

from eqspike_jax.config_lib import INITS
from eqspike_jax.network import Layer, Params


@dataclasses.dataclass(frozen=True)
class Dense:
  """A fully connected map ``[..., n_in] -> [..., n_out]``, ``s @ w``, feedback ``s @ w.T``."""
  n_in: int
  n_out: int

  @property
  def fan_out(self) -> int:
    """Synapses a unit of the sending layer drives (what one of its spikes costs a chip)."""
    return self.n_out

  @property
  def fan_in(self) -> int:
    """Synapses a unit of the receiving layer is driven by (its feedback spikes' fan-out)."""
    return self.n_in

  @property
  def num_synapses(self) -> int:
    return self.n_in * self.n_out

  def init(self, key: chex.PRNGKey, init: str, scale: float) -> Layer:
    """``uniform``: w and b from ``U(-1/sqrt(fan_in), +)`` (PyTorch's ``nn.Linear``, which the
    EP reference code uses); ``glorot``: w from ``U(-sqrt(6/(fan_in+fan_out)), +)``, b = 0."""
    k_w, k_b = jax.random.split(key)
    shape = (self.n_in, self.n_out)
    if init == "uniform":
      bound = 1.0 / jnp.sqrt(self.n_in)
      w = jax.random.uniform(k_w, shape, minval=-bound, maxval=bound)
      b = jax.random.uniform(k_b, (self.n_out,), minval=-bound, maxval=bound)
    elif init == "glorot":
      bound = jnp.sqrt(6.0 / (self.n_in + self.n_out))
      w = jax.random.uniform(k_w, shape, minval=-bound, maxval=bound)
      b = jnp.zeros((self.n_out,))
    else:
      raise ValueError(f"init must be one of {INITS}, got {init!r}.")
    return Layer(w=scale * w, b=b)

  def forward(self, params: Layer, s: chex.Array) -> chex.Array:
    """The drive of the receiving layer, ``[..., n_out]``."""
    return s @ params.w

  def transpose(self, params: Layer, s: chex.Array) -> chex.Array:
    """The feedback to the sending layer, ``[..., n_in]``: the exact transpose of ``forward``."""
    return s @ params.w.T

  def outer(self, pre: chex.Array, post: chex.Array) -> chex.Array:
    """``sum over examples (and steps) of pre^T post``: d/dw of ``post . forward(pre)``.

    ``pre [B, n_in]`` with ``post [B, n_out]``, or ``[B, T, .]`` both, summed over B (and T).
    """
    chex.assert_equal_shape_prefix([pre, post], prefix_len=pre.ndim - 1)
    if pre.ndim == 2:
      return pre.T @ post
    chex.assert_rank(pre, 3)
    return jnp.einsum("btn,btm->nm", pre, post)


Architecture = Tuple[Dense, ...]


def dense_stack(layer_sizes: Sequence[int]) -> Architecture:
  """``(n_input, n_hidden_1, ..., n_output)`` as a stack of dense layers."""
  sizes = tuple(layer_sizes)
  return tuple(Dense(n_in, n_out) for n_in, n_out in zip(sizes[:-1], sizes[1:]))


def sizes_of(arch: Architecture) -> Tuple[int, ...]:
  """The unit counts of every layer, the clamped input first."""
  return (arch[0].n_in,) + tuple(layer.n_out for layer in arch)


def init_params(arch: Architecture, key: chex.PRNGKey, init: str = "uniform",
                scale: float = 1.0) -> Params:
  """One ``network.Layer`` per weight layer; ``scale`` multiplies the initial weights."""
  keys = jax.random.split(key, len(arch))
  return tuple(layer.init(k, init, scale) for layer, k in zip(arch, keys))


def check_params(arch: Architecture, params: Params) -> None:
  """Raises when ``params`` does not fit ``arch`` (a checkpoint of another network)."""
  if len(params) != len(arch):
    raise ValueError(f"{len(params)} weight layers for an architecture of {len(arch)}.")
  for l, (layer, p) in enumerate(zip(arch, params)):
    if p.w.shape != (layer.n_in, layer.n_out) or p.b.shape != (layer.n_out,):
      raise ValueError(f"layer {l}: parameters of shapes {p.w.shape}, {p.b.shape} for a "
                       f"{layer.n_in} -> {layer.n_out} layer.")


def layer_currents(arch: Architecture, params: Params, drive: chex.Array,
                   acts: Tuple[chex.Array, ...]) -> Tuple[chex.Array, ...]:
  """What every free layer receives from its neighbours, before any nudge (one example).

  ``drive`` is the forward input of the first free layer (the caller computes it once per phase
  or per step); ``acts`` are what the free layers send: rates for rate EP, spikes for EqSpike.
  Layer ``l`` gets ``forward(acts[l-1]) + b_l`` and, unless it is the output,
  ``transpose(acts[l+1])`` from above.
  """
  n = len(acts)
  currents = []
  for l in range(n):
    current = (drive if l == 0 else arch[l].forward(params[l], acts[l - 1])) + params[l].b
    if l + 1 < n:
      current = current + arch[l + 1].transpose(params[l + 1], acts[l + 1])
    currents.append(current)
  return tuple(currents)


def zero_states(arch: Architecture, batch_shape: Tuple[int, ...] = (),
                dtype=jnp.float32) -> Tuple[chex.Array, ...]:
  """One zero array per free layer, ``batch_shape + (n_l,)``: every phase starts at rest."""
  return tuple(jnp.zeros(batch_shape + (layer.n_out,), dtype) for layer in arch)
