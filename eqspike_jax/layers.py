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
from typing import Dict, Sequence, Tuple

import chex
import jax
import jax.numpy as jnp

from eqspike_jax import config_lib
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

  @property
  def w_shape(self) -> Tuple[int, ...]:
    return (self.n_in, self.n_out)

  def init(self, key: chex.PRNGKey, init: str, scale: float) -> Layer:
    """``uniform``: w and b from ``U(-1/sqrt(fan_in), +)`` (PyTorch's ``nn.Linear``, which the
    EP reference code uses); ``glorot``: w from ``U(-sqrt(6/(fan_in+fan_out)), +)``, b = 0."""
    return _uniform_init(key, self.w_shape, self.n_out, self.n_in, self.n_out, init, scale)

  def forward(self, params: Layer, s: chex.Array) -> chex.Array:
    """The drive of the receiving layer, ``[..., n_out]``."""
    return s @ params.w

  def transpose(self, params: Layer, s: chex.Array) -> chex.Array:
    """The feedback to the sending layer, ``[..., n_in]``: the exact transpose of ``forward``."""
    return s @ params.w.T

  def products(self, rows: int) -> Dict[str, Tuple[int, int, int]]:
    """``(m, k, n)`` of the product ``[m, k] @ [k, n]`` each map computes on ``rows`` rows."""
    return {"forward": (rows, self.n_in, self.n_out), "transpose": (rows, self.n_out, self.n_in),
            "outer": (self.n_in, rows, self.n_out)}

  def outer(self, pre: chex.Array, post: chex.Array) -> chex.Array:
    """``sum over examples (and steps) of pre^T post``: d/dw of ``post . forward(pre)``.

    ``pre [B, n_in]`` with ``post [B, n_out]``, or ``[B, T, .]`` both, summed over B (and T).
    """
    chex.assert_equal_shape_prefix([pre, post], prefix_len=pre.ndim - 1)
    if pre.ndim == 2:
      return pre.T @ post
    chex.assert_rank(pre, 3)
    return jnp.einsum("btn,btm->nm", pre, post)


def _uniform_init(key, w_shape, n_out, fan_in, fan_out, init, scale) -> Layer:
  """``uniform``: w and b from ``U(-1/sqrt(fan_in), +)``; ``glorot``: ``U(-sqrt(6/(fan_in +
  fan_out)), +)`` and b = 0 (fans as a kernel's taps, for a convolution)."""
  k_w, k_b = jax.random.split(key)
  if init == "uniform":
    bound = 1.0 / jnp.sqrt(fan_in)
    w = jax.random.uniform(k_w, w_shape, minval=-bound, maxval=bound)
    b = jax.random.uniform(k_b, (n_out,), minval=-bound, maxval=bound)
  elif init == "glorot":
    bound = jnp.sqrt(6.0 / (fan_in + fan_out))
    w = jax.random.uniform(k_w, w_shape, minval=-bound, maxval=bound)
    b = jnp.zeros((n_out,))
  else:
    raise ValueError(f"init must be one of {INITS}, got {init!r}.")
  return Layer(w=scale * w, b=b)


@dataclasses.dataclass(frozen=True)
class Conv:
  """A convolution (stride 1, no padding) then ``pool x pool`` average pooling, on flat states.

  The layers of a network keep flat states ``[..., n]`` so that the dynamics, the rules and the
  counts never see a shape; this map reshapes to ``[H, W, C]`` inside. Both the convolution and
  the average pooling are linear, so the feedback is the exact transpose of their composition
  (``jax.linear_transpose`` of the same map in its patch form, ``_patch_forward``), and the
  weights stay symmetric by construction. Each output unit has its own bias (a neuron's own register), so
  ``b`` has ``n_out`` entries like a dense layer's.
  """
  in_shape: Tuple[int, int, int]  # (H, W, C_in) of the sending layer.
  channels: int                   # C_out.
  kernel: int = 5
  pool: int = 1

  def __post_init__(self):
    h, w, _ = self.in_shape
    conv = (h - self.kernel + 1, w - self.kernel + 1)
    if min(conv) < 1 or conv[0] % self.pool or conv[1] % self.pool:
      raise ValueError(f"a {self.kernel}x{self.kernel} convolution of {self.in_shape} gives "
                       f"{conv}, which {self.pool}x{self.pool} pooling must divide exactly.")

  @property
  def out_shape(self) -> Tuple[int, int, int]:
    h, w, _ = self.in_shape
    return ((h - self.kernel + 1) // self.pool, (w - self.kernel + 1) // self.pool,
            self.channels)

  @property
  def n_in(self) -> int:
    return self.in_shape[0] * self.in_shape[1] * self.in_shape[2]

  @property
  def n_out(self) -> int:
    return self.out_shape[0] * self.out_shape[1] * self.out_shape[2]

  @property
  def w_shape(self) -> Tuple[int, ...]:
    return (self.kernel, self.kernel, self.in_shape[2], self.channels)

  @property
  def fan_out(self) -> float:
    """Synapses one spike of the sending layer drives: its kernel fan-out, after pooling.

    Pooling makes the map one convolution with a ``(k + p - 1)``-wide effective kernel at
    stride ``p``: a unit reaches ``((k + p - 1) / p)^2`` pooled positions of every output
    channel (away from the borders, which reach fewer; the average when p does not divide
    ``k + p - 1``), each through one effective weight. A chip pays this per spike.
    """
    side = (self.kernel + self.pool - 1) / self.pool
    return side * side * self.channels

  @property
  def fan_in(self) -> int:
    """Synapses one feedback spike of the receiving layer drives: its effective kernel."""
    side = self.kernel + self.pool - 1
    return side * side * self.in_shape[2]

  @property
  def num_synapses(self) -> int:
    """Weights stored (shared by every position)."""
    return self.kernel * self.kernel * self.in_shape[2] * self.channels

  def init(self, key: chex.PRNGKey, init: str, scale: float) -> Layer:
    taps = self.kernel * self.kernel
    return _uniform_init(key, self.w_shape, self.n_out, taps * self.in_shape[2],
                         taps * self.channels, init, scale)

  def products(self, rows: int) -> Dict[str, Tuple[int, int, int]]:
    """The maps as the products ``[m, k] @ [k, n]`` of the multiply-accumulates they compute.

    One ``k^2 C_in`` dot per pooled output unit (``forward``: see ``_boxed``), its transpose
    per pooled output position (``transpose``), and one ``rows x positions`` dot per weight
    (``outer``), as XLA computes them and ``flops.jaxpr_cost`` counts them; the box filter
    and its transpose are elementwise work.
    """
    h, w, _ = self.out_shape
    taps, positions = self.kernel * self.kernel * self.in_shape[2], h * w
    return {"forward": (rows * positions, taps, self.channels),
            "transpose": (rows * positions, self.channels, taps),
            "outer": (taps, rows * positions, self.channels)}

  def _boxed(self, s: chex.Array) -> chex.Array:
    """``[N, H, W, C]``: the input averaged over every ``pool x pool`` window (stride 1).

    Average pooling after a convolution equals this box filter before the same convolution
    taken at stride ``pool``: the pooled output is computed directly, with ``pool^2`` times
    fewer multiply-accumulates in the map, its transpose and the rule's products.
    """
    v = s.reshape((-1,) + self.in_shape)
    if self.pool == 1:
      return v
    p, (_, h, w, _) = self.pool, v.shape
    return sum(v[:, a:h - p + 1 + a, b:w - p + 1 + b] for a in range(p) for b in range(p)) / (
        p * p)

  def forward(self, params: Layer, s: chex.Array) -> chex.Array:
    """The drive of the receiving layer, ``[..., n_out]``."""
    v = jax.lax.conv_general_dilated(self._boxed(s), params.w.astype(s.dtype),
                                     (self.pool, self.pool), "VALID",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return v.reshape(s.shape[:-1] + (self.n_out,))

  def _patch_forward(self, params: Layer, s: chex.Array) -> chex.Array:
    """``forward`` as one product of the strided patches with the flattened kernel.

    The same linear map, as one dot. Its transpose (a product and the patches' scatter) is
    the fastest feedback on a CPU, where XLA's transposed strided convolution multiplies the
    zeros it dilates; and its weight gradient is the rule's product, which as a convolution
    runs 20 times slower inside a loop (the trainer's scan over steps) than outside one.
    """
    v, (ho, wo, _), p = self._boxed(s), self.out_shape, self.pool
    patches = jnp.concatenate(
        [v[:, i:i + p * (ho - 1) + 1:p, j:j + p * (wo - 1) + 1:p]
         for i in range(self.kernel) for j in range(self.kernel)], axis=-1)
    out = patches @ params.w.astype(s.dtype).reshape(-1, self.channels)
    return out.reshape(s.shape[:-1] + (self.n_out,))

  def transpose(self, params: Layer, s: chex.Array) -> chex.Array:
    """The feedback to the sending layer, ``[..., n_in]``: the exact transpose of ``forward``."""
    spec = jax.ShapeDtypeStruct(s.shape[:-1] + (self.n_in,), s.dtype)
    return jax.linear_transpose(lambda v: self._patch_forward(params, v), spec)(s)[0]

  def outer(self, pre: chex.Array, post: chex.Array) -> chex.Array:
    """``d/dw`` of ``sum post . forward(pre)`` over examples (and steps), ``w_shape``.

    One product ``patches(pre)^T post`` over every row and output position.
    """
    chex.assert_equal_shape_prefix([pre, post], prefix_len=pre.ndim - 1)
    pre, post = pre.reshape(-1, self.n_in), post.reshape(-1, self.n_out)
    fn = lambda w: self._patch_forward(Layer(w=w, b=None), pre)
    return jax.linear_transpose(fn, jax.ShapeDtypeStruct(self.w_shape, pre.dtype))(post)[0]


Architecture = Tuple[Dense, ...]  # Or any layer with Dense's interface (Conv).


def dense_stack(layer_sizes: Sequence[int]) -> Architecture:
  """``(n_input, n_hidden_1, ..., n_output)`` as a stack of dense layers."""
  sizes = tuple(layer_sizes)
  return tuple(Dense(n_in, n_out) for n_in, n_out in zip(sizes[:-1], sizes[1:]))


def from_config(config) -> Architecture:
  """The network of a config: its convolutions (``conv_layers``), then its dense layers."""
  if not config.conv_layers:
    return dense_stack(config.layer_sizes)
  shapes = config_lib.conv_shapes(config.input_shape, config.conv_layers)
  convs = tuple(Conv(shape, channels, kernel, pool)
                for shape, (channels, kernel, pool) in zip(shapes, config.conv_layers))
  return convs + dense_stack((convs[-1].n_out,) + tuple(config.layer_sizes[1:]))


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
    if tuple(p.w.shape) != tuple(layer.w_shape) or p.b.shape != (layer.n_out,):
      raise ValueError(f"layer {l}: parameters of shapes {p.w.shape}, {p.b.shape} for a "
                       f"{layer.n_in} -> {layer.n_out} layer (w {layer.w_shape}).")


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
