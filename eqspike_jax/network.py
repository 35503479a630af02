"""Parameters and activations of a layered, symmetric (Hopfield-like) network.

Conventions shared by the rate and spiking networks:

* Layer 0 is the clamped input ``x``; layers ``1 .. L+1`` are the free neurons, the last of which
  is the output. ``params[l]`` carries layer ``l`` to layer ``l + 1``: ``params[l].w`` has shape
  ``[fan_in, fan_out]`` so that the forward drive of one example is ``s_l @ w`` and the feedback to
  layer ``l`` is ``s_{l+1} @ w.T`` (the same matrix: weights are symmetric by construction).
* ``params[l].b`` is the bias of the *receiving* layer ``l + 1``.
* The state ``s`` of one example is a tuple of 1-D arrays, one per free layer (the input is not
  part of the state, it never changes).
"""

from typing import Callable, Sequence, Tuple

import chex
import flax
import jax
import jax.numpy as jnp


@flax.struct.dataclass
class Layer:
  """Synapses from one layer to the next."""
  w: chex.Array  # [fan_in, fan_out]; the feedback path uses w.T.
  b: chex.Array  # [fan_out]; bias of the receiving layer.


Params = Tuple[Layer, ...]
State = Tuple[chex.Array, ...]  # One 1-D array per free (non-input) layer.


def init_params(key: chex.PRNGKey, layer_sizes: Sequence[int], init: str = "uniform",
                scale: float = 1.0) -> Params:
  """Initialises weights and biases.

  Args:
    key: random key.
    layer_sizes: ``(n_input, n_hidden_1, ..., n_output)``.
    init: ``"uniform"`` draws w and b from ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` (PyTorch's
      ``nn.Linear`` default, which the EP reference code uses); ``"glorot"`` draws w from
      ``U(-sqrt(6/(fan_in+fan_out)), +...)`` with zero biases.
    scale: multiplies the initial weights (EP code bases expose this knob: larger weights make
      the feedback stronger).
  """
  if init not in ("uniform", "glorot"):
    raise ValueError(f"init must be 'uniform' or 'glorot', got {init!r}.")
  layers = []
  keys = jax.random.split(key, len(layer_sizes) - 1)
  for k, fan_in, fan_out in zip(keys, layer_sizes[:-1], layer_sizes[1:]):
    k_w, k_b = jax.random.split(k)
    if init == "uniform":
      bound = 1.0 / jnp.sqrt(fan_in)
      w = jax.random.uniform(k_w, (fan_in, fan_out), minval=-bound, maxval=bound)
      b = jax.random.uniform(k_b, (fan_out,), minval=-bound, maxval=bound)
    else:
      bound = jnp.sqrt(6.0 / (fan_in + fan_out))
      w = jax.random.uniform(k_w, (fan_in, fan_out), minval=-bound, maxval=bound)
      b = jnp.zeros((fan_out,))
    layers.append(Layer(w=scale * w, b=b))
  return tuple(layers)


def layer_sizes_of(params: Params) -> Tuple[int, ...]:
  return (params[0].w.shape[0],) + tuple(layer.w.shape[1] for layer in params)


def zero_state(params: Params, dtype=jnp.float32) -> State:
  """The state every phase starts from: all free neurons at rest (one example)."""
  return tuple(jnp.zeros((layer.w.shape[1],), dtype) for layer in params)


def sigmoid4(v: chex.Array) -> chex.Array:
  """``sigmoid(4 (v - 1/2))``: slope 1 at v = 1/2, range (0, 1), as in the EP reference code."""
  return jax.nn.sigmoid(4.0 * (v - 0.5))


def hard_sigmoid(v: chex.Array) -> chex.Array:
  return jnp.clip(v, 0.0, 1.0)


ACTIVATIONS = {"sigmoid4": sigmoid4, "hard_sigmoid": hard_sigmoid}


def get_activation(name: str) -> Callable[[chex.Array], chex.Array]:
  try:
    return ACTIVATIONS[name]
  except KeyError:
    raise ValueError(
        f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}.") from None


def cost(s_out: chex.Array, y: chex.Array) -> chex.Array:
  """``C = 1/2 ||s_o - y||^2`` for one example (y one-hot)."""
  chex.assert_equal_shape([s_out, y])
  return 0.5 * jnp.sum(jnp.square(s_out - y), axis=-1)
